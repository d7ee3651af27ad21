"""How a Dataverse URL names an organisation, an API version, an auth method and the limits.

The URL carries no secret, only references to secrets (``env:``, ``file:``, ``keyring:``)::

    dataverse+https://crm.contoso.local/Contoso?api=v8.2&auth=ntlm&user=CONTOSO%5Csvc-crm&password=env:CRM_PW
    dataverse+https://contoso.crm4.dynamics.com/?auth=client_credentials&tenant=TENANT-ID
        &client_id=APP-ID&client_secret=env:CRM_SECRET
    dataverse+https://contoso.crm4.dynamics.com/?auth=device_code&tenant=TENANT-ID&client_id=APP-ID
    dataverse+http://127.0.0.1:8080/org?api=v9.2          (no auth: a local test server only)

The path is the organisation's prefix on premises (``/Contoso``) and empty online; the Web API
lives under ``<path>/api/data/<api>/``. Options, all optional:

``api``        Web API version: ``v8.2`` for CRM 2016 / Dynamics 365 on premises, ``v9.2`` online
               (default ``v9.2``). v8.x batches stop at the first failure (no continue-on-error).
``auth``       ``none`` | ``ntlm`` | ``negotiate`` (on premises: ``user`` + ``password``) |
               ``client_credentials`` (``tenant``, ``client_id``, ``client_secret``) |
               ``device_code`` (``tenant``, ``client_id``; a person signs in once).
               Default: ``ntlm`` when ``user`` is given, else ``none``.
``authority``  the Entra ID / AD FS 2019 authority (default ``https://login.microsoftonline.com/<tenant>``)
``scope``      OAuth scope (default ``<origin>/.default``)
``batch``      requests per ``$batch`` (1..1000, default 1000)
``pagesize``   ``Prefer: odata.maxpagesize`` (1..5000, default 5000)
``timeout``    seconds per HTTP request (default 60)
``max_wait``   seconds one call may spend waiting on 429/503 ``Retry-After`` (default 300)
``retries``    attempts after a timeout, a dropped connection or a 429/503 (default 8)
``readonly``   ``omit`` (default) or ``send``: whether to send attributes the org's metadata says
               are not valid for create/update (inreplyto, conversationindex, correlationmethod,
               senton on ``email``...); the platform ignores them, so ``send`` only adds bytes
``ca``         a CA bundle file for https (default: the system's)
``state``      the router's own state file for what Dataverse has no column for (send attempts,
               the last delivery error, tracking counters and user numbers, smart-matching hashes;
               see ``dataverse/state.py``). Default:
               ``$XDG_STATE_HOME/emailrouter/dataverse-<hash of the Web API URL>.sqlite``
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlsplit

from emailrouter_lib.errors import CrmURLError
from emailrouter_lib.secrets import is_reference, redact_url, url_secret_problem

SCHEMES = ("dataverse+http", "dataverse+https")
AUTH_METHODS = ("none", "ntlm", "negotiate", "client_credentials", "device_code")
MAX_BATCH = 1000  # the Web API's limit of requests per $batch
MAX_PAGE = 5000  # the Web API's largest page

FORMS = (
    "dataverse+https://HOST/ORG?api=v8.2&auth=ntlm&user=DOMAIN%5Cuser&password=env:NAME "
    "(on premises), dataverse+https://ORG.crm.dynamics.com/?auth=client_credentials"
    "&tenant=ID&client_id=ID&client_secret=env:NAME (online)"
)

_OPTIONS = (
    "api",
    "auth",
    "user",
    "password",
    "tenant",
    "client_id",
    "client_secret",
    "authority",
    "scope",
    "batch",
    "pagesize",
    "timeout",
    "max_wait",
    "retries",
    "readonly",
    "ca",
    "state",
)


@dataclass(frozen=True)
class DataverseSettings:
    """A parsed Dataverse URL: where the Web API is and how to talk to it (no secret values)."""

    url: str  # as given (it holds references, never secret values)
    origin: str  # scheme://host[:port]
    org_path: str  # "" online, "/Contoso" on premises
    api: str = "v9.2"
    auth: str = "none"
    user: str | None = None
    password: str | None = None  # a secret reference
    tenant: str | None = None
    client_id: str | None = None
    client_secret: str | None = None  # a secret reference
    authority: str | None = None
    scope: str | None = None
    batch: int = MAX_BATCH
    pagesize: int = MAX_PAGE
    timeout: float = 60.0
    max_wait: float = 300.0
    retries: int = 8
    send_readonly: bool = False
    ca: str | None = None
    state: str | None = None  # path of the router's state file (None: the default per org)

    @property
    def base_url(self) -> str:
        """The Web API root, ending in a slash: ``https://host/org/api/data/v9.2/``."""
        return f"{self.origin}{self.org_path}/api/data/{self.api}/"

    @property
    def major_version(self) -> int:
        return int(self.api[1:].split(".", 1)[0])

    @property
    def continue_on_error(self) -> bool:
        """v8.x (CRM 2016) ignores ``Prefer: odata.continue-on-error``; v9 honours it."""
        return self.major_version >= 9

    @property
    def oauth_scope(self) -> str:
        return self.scope or f"{self.origin}/.default"

    @property
    def oauth_authority(self) -> str:
        return self.authority or f"https://login.microsoftonline.com/{self.tenant}"


def parse_dataverse_url(url: str) -> DataverseSettings:
    """Parse and check a ``dataverse+http(s)://`` URL; errors name the URL and the fix."""
    text = (url or "").strip()
    parts = urlsplit(text)
    if parts.username or parts.password:
        raise CrmURLError(
            f"CRM URL {_redact(text)!r} carries credentials before the host; give "
            f"user=... and password=env:NAME (a reference) as options instead"
        )
    problem = url_secret_problem(text)  # the check every URL front shares
    if problem:
        raise CrmURLError(f"CRM URL {_redact(text)!r}: {problem}")
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        raise CrmURLError(
            f"CRM URL {_redact(text)!r} is not a Dataverse URL; supported forms: {FORMS}"
        )
    if not parts.hostname:
        raise CrmURLError(f"CRM URL {_redact(text)!r} names no host; supported forms: {FORMS}")
    try:
        pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=bool(parts.query))
    except ValueError:
        raise CrmURLError(f"CRM URL {_redact(text)!r} has a malformed query") from None
    options: dict[str, str] = {}
    for key, value in pairs:
        if key not in _OPTIONS:
            raise CrmURLError(
                f"CRM URL {_redact(text)!r}: unknown option {key!r}; known: {', '.join(_OPTIONS)}"
            )
        options[key] = value
    for secret in ("password", "client_secret"):
        if options.get(secret) and not is_reference(options[secret]):
            raise CrmURLError(
                f"CRM URL {_redact(text)!r}: {secret} must be a reference (env:NAME, file:PATH "
                f"or keyring:SERVICE/USER), not the secret itself"
            )
    api = options.get("api", "v9.2").lower()
    if not api.startswith("v") or not _is_version(api[1:]):
        raise CrmURLError(f"CRM URL {_redact(text)!r}: api={api!r}; use e.g. v8.2 or v9.2")
    auth = options.get("auth") or ("ntlm" if options.get("user") else "none")
    if auth not in AUTH_METHODS:
        raise CrmURLError(
            f"CRM URL {_redact(text)!r}: auth={auth!r}; use one of {', '.join(AUTH_METHODS)}"
        )
    needs = {
        "ntlm": ("user", "password"),
        "negotiate": ("user", "password"),
        "client_credentials": ("tenant", "client_id", "client_secret"),
        "device_code": ("client_id",),
    }.get(auth, ())
    missing = [name for name in needs if not options.get(name)]
    if auth == "device_code" and not (options.get("tenant") or options.get("authority")):
        missing.append("tenant")
    if missing:
        raise CrmURLError(f"CRM URL {_redact(text)!r}: auth={auth} needs {', '.join(missing)}")
    port = f":{parts.port}" if parts.port else ""
    readonly = options.get("readonly", "omit")
    if readonly not in ("send", "omit"):
        raise CrmURLError(f"CRM URL {_redact(text)!r}: readonly={readonly!r}; use send or omit")
    return DataverseSettings(
        url=text,
        origin=f"{scheme.removeprefix('dataverse+')}://{parts.hostname}{port}",
        org_path=parts.path.rstrip("/"),
        api=api,
        auth=auth,
        user=options.get("user") or None,
        password=options.get("password") or None,
        tenant=options.get("tenant") or None,
        client_id=options.get("client_id") or None,
        client_secret=options.get("client_secret") or None,
        authority=options.get("authority") or None,
        scope=options.get("scope") or None,
        batch=_number(text, options, "batch", MAX_BATCH, 1, MAX_BATCH, int),
        pagesize=_number(text, options, "pagesize", MAX_PAGE, 1, MAX_PAGE, int),
        timeout=_number(text, options, "timeout", 60.0, 0.01, 3600.0, float),
        max_wait=_number(text, options, "max_wait", 300.0, 0.0, 86400.0, float),
        retries=_number(text, options, "retries", 8, 0, 100, int),
        send_readonly=readonly == "send",
        ca=options.get("ca") or None,
        state=options.get("state") or None,
    )


def _is_version(text: str) -> bool:
    pieces = text.split(".")
    return 1 <= len(pieces) <= 2 and all(piece.isdigit() for piece in pieces)


def _number(url, options, name, default, low, high, kind):
    if name not in options:
        return default
    try:
        value = kind(options[name])
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise CrmURLError(
            f"CRM URL {_redact(url)!r}: {name}={options[name]!r}; use a number from {low} to {high}"
        )
    return value


def _redact(url: str) -> str:
    """The URL with anything that might be a literal secret masked (for error messages): the
    values of credential options and of options Dataverse URLs do not take."""
    return redact_url(url, _OPTIONS)


__all__ = [
    "AUTH_METHODS",
    "FORMS",
    "MAX_BATCH",
    "MAX_PAGE",
    "DataverseSettings",
    "parse_dataverse_url",
]
