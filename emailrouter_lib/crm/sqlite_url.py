"""The forms a CRM URL may take, and the ``sqlite:`` form parsed into the database file it names.

Apart from :mod:`emailrouter_lib.crm.url` (which opens what a URL names, and may seed the demo)
so that the demo seeding can read a ``sqlite:`` URL without importing the module that calls it.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from emailrouter_lib.errors import CrmURLError
from emailrouter_lib.secrets import redact_url, url_secret_problem

SUPPORTED_FORMS = (
    "sqlite:///relative/path.db (relative to the working directory), "
    "sqlite:////absolute/path.db (absolute: three slashes, then the path), "
    "dataverse+https://HOST/ORG?api=v8.2&auth=ntlm&user=...&password=env:NAME (Web API)"
)


def sqlite_path(url: str) -> Path:
    """The database file a ``sqlite:`` URL names, made absolute against the working directory."""
    if not isinstance(url, str) or not url.strip():
        raise CrmURLError(f"CRM URL {url!r} is empty; supported forms: {SUPPORTED_FORMS}")
    text = url.strip()
    refuse_secret_in_url(text)
    shown = redact_url(text)
    parts = urlsplit(text)
    if parts.scheme.lower() != "sqlite":
        scheme = parts.scheme or "(none)"
        raise CrmURLError(
            f"CRM URL {shown!r} names an unknown backend {scheme!r}; supported forms: "
            f"{SUPPORTED_FORMS}"
        )
    if not text.lower().startswith("sqlite:///"):
        raise CrmURLError(
            f"CRM URL {shown!r} must start with sqlite:/// (three slashes: no host part); "
            f"supported forms: {SUPPORTED_FORMS}"
        )
    if parts.query or parts.fragment:
        raise CrmURLError(
            f"CRM URL {shown!r} has a query or fragment, which a sqlite URL does not take; "
            f"supported forms: {SUPPORTED_FORMS}"
        )
    raw = text[len("sqlite:///") :]
    if not raw or raw.endswith("/") or raw == ":memory:":
        raise CrmURLError(
            f"CRM URL {shown!r} does not name a database file; supported forms: {SUPPORTED_FORMS}"
        )
    return Path(raw).expanduser().absolute()


def refuse_secret_in_url(url: str) -> None:
    """Refuse a CRM (or ledger) URL that carries a literal secret, naming it redacted."""
    problem = url_secret_problem(url) if isinstance(url, str) else None
    if problem:
        raise CrmURLError(f"CRM URL {redact_url(url)!r}: {problem}")


__all__ = ["SUPPORTED_FORMS", "refuse_secret_in_url", "sqlite_path"]
