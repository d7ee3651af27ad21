"""Secrets by reference: ``env:NAME``, ``file:PATH``, ``keyring:SERVICE/USER``.

Parameters, URLs and config name a secret; the value is fetched only when a connection is made and
is never stored on an object that gets printed, logged or written to a report. A literal value where
a reference is expected is refused, because papermill copies parameters into the executed notebook.

This module is the one place that decides what a literal secret looks like, for every front that
takes a URL or a parameter (the runner, the command line, routing / audit parameters, mailbox,
transport and CRM URLs): a password in a URL's user part (``imaps://crm:PW@host``), or a parameter
whose name, after percent-decoding and case-folding, names a credential (``pass%77ord=``,
``PASSWORD=``, ``client_secret=``, ``token=``, ``pwd=``) and whose value is not a reference. What
resolves a secret remembers its value (:mod:`emailrouter_lib.known_secrets`), so a server that
echoes it back has it masked wherever the reply is stored or printed.
"""

from __future__ import annotations

import os
import re
import unicodedata
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, unquote_plus, urlsplit

from emailrouter_lib.errors import SecretError
from emailrouter_lib.known_secrets import MASK, mask_known_secrets, remember_secret

SCHEMES = ("env:", "file:", "keyring:")
REFERENCE_FORMS = "env:NAME, file:PATH or keyring:SERVICE/USER"

# Names that hold credentials (parameter names and URL query names, once normalised).
_SECRET_NAME = re.compile(
    r"password|passwd|passphrase|passcode|secret|credential|api_?key|private_?key|access_?key"
    r"|(?:^|[^a-z0-9])(?:pass|pwd|pw|token|auth_?token|sas)(?:[^a-z0-9]|$)"
)
# ``name=value`` pairs anywhere in a text: URL queries, fragments, connection strings.
_PAIR = re.compile(r"[?&;#]([^=?&;#\s]+)=([^&;#\s]*)")


def is_reference(value: str | None) -> bool:
    """True when *value* is a secret reference (not a literal secret)."""
    return bool(value) and value.startswith(SCHEMES)


def resolve_secret(reference: str) -> str:
    """Return the secret named by *reference*; the error never contains the value.

    The value is remembered for this process, so text that later quotes it is masked.
    """
    value = _resolve(reference)
    remember_secret(value)
    return value


def _resolve(reference: str) -> str:
    if not is_reference(reference):
        raise SecretError(
            "expected a secret reference (env:NAME, file:PATH or keyring:SERVICE/USER), "
            "got a literal value; put the secret in an environment variable, a file or the keyring"
        )
    scheme, _, name = reference.partition(":")
    if scheme == "env":
        value = os.environ.get(name)
        if value is None:
            raise SecretError(f"environment variable {name!r} (from {reference!r}) is not set")
        return value
    if scheme == "file":
        path = Path(name).expanduser()
        try:
            return path.read_text(encoding="utf-8").rstrip("\r\n")
        except OSError as exc:
            raise SecretError(f"cannot read secret file {path}: {exc.strerror}") from None
    service, _, user = name.partition("/")
    if not service or not user:
        raise SecretError(f"keyring reference {reference!r} must be keyring:SERVICE/USER")
    try:
        import keyring

        value = keyring.get_password(service, user)
    except Exception as exc:  # keyring backends raise their own types
        if exc.__class__.__name__ == "NoKeyringError":
            raise SecretError(
                f"{reference}: no keyring backend is available to this user; install and "
                "configure one (the Secret Service, e.g. GNOME Keyring, on Linux; the macOS "
                "Keychain; the Windows Credential Manager; or the keyrings.alt package), "
                "or give the secret as env:NAME or file:PATH instead"
            ) from None
        raise SecretError(
            f"keyring lookup {reference!r} failed: {exc.__class__.__name__}"
        ) from None
    if value is None:
        raise SecretError(f"no keyring entry for service {service!r}, user {user!r}")
    return value


def is_secret_name(name: str) -> bool:
    """True when a parameter or query name names a credential, however it is spelt
    (percent-encoded, upper case, ``client-secret``, full-width letters)."""
    return bool(_SECRET_NAME.search(_normal_name(name)))


def url_secret_problem(url: str) -> str | None:
    """Why *url* (or any text holding URLs or ``name=value`` pairs) carries a literal secret,
    with what to do instead; None when it carries none. Never quotes the secret."""
    text = str(url)
    for token in text.split():
        if "//" in token and _userinfo_password(token):
            return (
                "a password written into the URL (user:PASSWORD@host) is refused, since it "
                "would be copied into notebooks, reports and logs; remove it and give it by "
                "reference: password=env:NAME (or file:PATH, keyring:SERVICE/USER)"
            )
    for name, value in _pairs(text):
        if is_secret_name(name) and value.strip() and not is_reference(value.strip()):
            if not re.fullmatch(r"[\w.-]{1,40}", name):  # a name odd enough to hide a value
                name = re.sub(r"[^a-z0-9_]", "", _SECRET_NAME.search(_normal_name(name)).group(0))
            return (
                f"parameter {name!r} holds a literal secret, which would be copied into "
                f"notebooks, reports and logs; it must be a reference: {name}=env:NAME "
                "(or file:PATH, keyring:SERVICE/USER)"
            )
    return None


def literal_secrets(parameters: Mapping[str, Any], _prefix: str = "") -> list[str]:
    """Where *parameters* hold a secret value rather than a reference: each place as
    ``name`` (``name[2]``, ``outer.inner``) with the reason, never the value."""
    found: list[str] = []
    for name, value in parameters.items():
        found += _literals_in(f"{_prefix}{name}", str(name), value)
    return found


def refuse_literal_secrets(parameters: Mapping[str, Any], *, where: str = "") -> None:
    """Raise :class:`SecretError` naming every parameter of *parameters* that holds a literal
    secret (a password in a URL, a credential parameter that is not a reference)."""
    offenders = literal_secrets(parameters)
    if offenders:
        raise SecretError(
            f"{where}{': ' if where else ''}literal secret in "
            f"{'parameter' if len(offenders) == 1 else 'parameters'} {'; '.join(offenders)}"
        )


def redact_url(
    url: str, known: Collection[str] | None = None, *, unreadable: str = "<unreadable URL>"
) -> str:
    """*url* with any literal secret replaced by ``***``, safe to print, log or write.

    The user part's password, the value of every credential parameter that is not a reference and
    the fragment are masked; with *known* (the parameter names the URL's scheme takes) the values
    of unknown, maybe misspelt, parameters too. References (``password=env:NAME``) are kept: they
    name a secret, they are not one.
    """
    try:
        parts = urlsplit(str(url).strip())
        parts.port  # noqa: B018 - a malformed port is unreadable too
    except ValueError:
        return unreadable
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, _, hostport = netloc.rpartition("@")
        if ":" in userinfo or ":" in unquote(userinfo):
            user = userinfo.partition(":")[0]
            if ":" not in userinfo:  # the ':' was percent-encoded
                user = quote(unquote(userinfo).partition(":")[0], safe="")
            netloc = f"{user}:{MASK}@{hostport}"
    names = {_normal_name(n) for n in known} if known is not None else None
    pieces = []
    for piece in re.split("[&;]", parts.query) if parts.query else []:
        name, sep, value = piece.partition("=")
        shown = unquote_plus(value).strip()
        normal = _normal_name(name)
        keep = is_reference(shown) or (
            not _SECRET_NAME.search(normal) and (names is None or normal in names)
        )
        if not re.fullmatch(r"[\w.-]{0,40}", _normal_name(name)):
            name = MASK  # a name odd enough to hold a value (pass%3DVALUE=1)
        pieces.append(f"{name}{sep}{value if keep or not value else MASK}")
    query, fragment = "&".join(pieces), MASK if parts.fragment else ""
    if (netloc, query, fragment) == (parts.netloc, parts.query, parts.fragment):
        return mask_known_secrets(str(url).strip())  # as given: geturl() would normalise it
    redacted = parts._replace(netloc=netloc, query=query, fragment=fragment).geturl()
    return mask_known_secrets(redacted)


class _MaskedStream:
    """A text stream that masks remembered secrets in everything written to it."""

    def __init__(self, stream: Any):
        self._stream = stream

    def write(self, text: str) -> int:
        self._stream.write(mask_known_secrets(text))
        return len(text)

    def writelines(self, lines: Any) -> None:
        for line in lines:
            self.write(line)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


def mask_output_streams() -> None:
    """Mask remembered secrets in all this process prints (``sys.stdout``, ``sys.stderr``): the
    last line of defence for the command line, whatever text a server sent back."""
    import sys

    for name in ("stdout", "stderr"):
        stream = getattr(sys, name)
        if stream is not None and not isinstance(stream, _MaskedStream):
            setattr(sys, name, _MaskedStream(stream))


def _literals_in(where: str, name: str, value: Any) -> list[str]:
    if isinstance(value, Mapping):
        found: list[str] = []
        for key, item in value.items():
            found += _literals_in(f"{where}.{key}", str(key), item)
        return found
    if isinstance(value, list | tuple):
        found = []
        for index, item in enumerate(value):
            found += _literals_in(f"{where}[{index}]", name, item)
        return found
    if value in (None, "") or isinstance(value, bool):
        return []
    text = value if isinstance(value, str) else None
    if is_secret_name(name) and not (text is not None and is_reference(text.strip())):
        return [f"{where} (a credential must be a reference: {REFERENCE_FORMS})"]
    problem = url_secret_problem(text) if text is not None else None
    if problem:
        return [f"{where} ({redact_url(text) if '//' in text else 'the value'}: {problem})"]
    return []


def _userinfo_password(text: str) -> bool:
    try:
        netloc = urlsplit(text.strip()).netloc
    except ValueError:
        netloc = text.partition("//")[2].partition("/")[0]
    if "@" not in netloc:
        return False
    userinfo = netloc.rpartition("@")[0]
    return ":" in userinfo or ":" in unquote(userinfo)


def _pairs(text: str) -> list[tuple[str, str]]:
    """The ``name=value`` pairs of a query, fragment or ``;``-separated connection string (only
    after the first ``?``, ``#`` or ``;``: a file name such as ``pass=1.eml`` is no parameter)."""
    if ";" in text and "://" not in text:  # Server=...;Password=...: from the start
        return [(unquote_plus(n), unquote_plus(v)) for n, v in _PAIR.findall(f";{text}")]
    start = re.search(r"[?#;]", text)
    tail = text[start.start() :] if start else ""
    return [(unquote_plus(n), unquote_plus(v)) for n, v in _PAIR.findall(tail)]


def _normal_name(name: str) -> str:
    """A parameter name as it is meant: percent-decoded (repeatedly), NFKC, case-folded."""
    text = str(name)
    for _ in range(4):
        decoded = unquote_plus(text)
        if decoded == text:
            break
        text = decoded
    text = unicodedata.normalize("NFKC", text).casefold().strip()
    return re.sub(r"[\s.-]+", "_", text)
