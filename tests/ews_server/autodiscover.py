"""SOAP Autodiscover (``/autodiscover/autodiscover.svc``, GetUserSettings) as Exchange answers it.

exchangelib 5 speaks only this SOAP flavour (its POX ``autodiscover.xml`` client is gone since 5.0),
so that is what the fake serves. One request may ask for several users; each gets a
``UserResponse``: the settings asked for that the fake knows, ``SettingIsNotAvailable`` for the
others (as Exchange answers settings a server has no value for), ``InvalidUser`` for an address
without a mailbox, ``RedirectAddress`` when the test set one up.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from lxml import etree

from .soap import XSI, S, parse

A = "http://schemas.microsoft.com/exchange/2010/Autodiscover"
WSA = "http://www.w3.org/2005/08/addressing"
AUTODISCOVER_PATH = "/autodiscover/autodiscover.svc"
_ACTION = "http://schemas.microsoft.com/exchange/2010/Autodiscover/Autodiscover/"


@dataclass
class AutodiscoverAnswer:
    """What one GetUserSettings request asked and got (for the request log)."""

    users: tuple[str, ...] = ()
    status: int = 200
    body: bytes = b""
    settings: tuple[str, ...] = field(default=())


def _a(tag: str) -> str:
    return f"{{{A}}}{tag}"


def _child(parent, tag: str, text: str | None = None, *, nil: bool = False):
    node = etree.SubElement(parent, _a(tag))
    if nil:
        node.set(f"{{{XSI}}}nil", "true")
    elif text is not None:
        node.text = text
    return node


def get_user_settings(
    data: bytes,
    *,
    known: set[str],
    values: dict[str, str],
    redirects: dict[str, str],
) -> AutodiscoverAnswer:
    """Answer one GetUserSettings request.

    *known*: addresses with a mailbox; *values*: setting name → value for every known user
    (``ExternalEwsUrl``...); *redirects*: address → the address Autodiscover should be asked about
    instead (``RedirectAddress``).
    """
    try:
        root = parse(data)
        request = root.find(f"{{{S}}}Body/{_a('GetUserSettingsRequestMessage')}/{_a('Request')}")
        users = [m.text or "" for m in request.iter(_a("Mailbox"))]
        asked = [s.text or "" for s in request.iter(_a("Setting"))]
    except Exception:
        return AutodiscoverAnswer(status=400, body=b"Bad Request")
    env = etree.Element(f"{{{S}}}Envelope", nsmap={"s": S, "a": WSA})
    header = etree.SubElement(env, f"{{{S}}}Header")
    action = etree.SubElement(header, f"{{{WSA}}}Action")
    action.set(f"{{{S}}}mustUnderstand", "1")
    action.text = _ACTION + "GetUserSettingsResponse"
    info = etree.SubElement(header, _a("ServerVersionInfo"), nsmap={"h": A, "i": XSI})
    for name, value in (
        ("MajorVersion", "15"),
        ("MinorVersion", "1"),
        ("MajorBuildNumber", "2507"),
        ("MinorBuildNumber", "6"),
        ("Version", "Exchange2015"),
    ):
        _child(info, name, value)
    body = etree.SubElement(env, f"{{{S}}}Body")
    message = etree.SubElement(body, _a("GetUserSettingsResponseMessage"), nsmap={None: A})
    response = _child(message, "Response")
    _child(response, "ErrorCode", "NoError")
    _child(response, "ErrorMessage")
    responses = _child(response, "UserResponses")
    for user in users:
        _user_response(_child(responses, "UserResponse"), user, asked, known, values, redirects)
    out = etree.tostring(env, xml_declaration=True, encoding="utf-8")
    return AutodiscoverAnswer(tuple(u.lower() for u in users), 200, out, tuple(asked))


def _user_response(node, user, asked, known, values, redirects) -> None:
    address = user.lower()
    if address in redirects:
        _child(node, "ErrorCode", "RedirectAddress")
        _child(node, "ErrorMessage", "Redirection address.")
        _child(node, "RedirectTarget", redirects[address])
        _child(node, "UserSettingErrors")
        _child(node, "UserSettings")
        return
    if address not in known:
        _child(node, "ErrorCode", "InvalidUser")
        _child(node, "ErrorMessage", f"The requested user '{user}' is invalid.")
        _child(node, "RedirectTarget", nil=True)
        _child(node, "UserSettingErrors")
        _child(node, "UserSettings")
        return
    _child(node, "ErrorCode", "NoError")
    _child(node, "ErrorMessage", "No error.")
    _child(node, "RedirectTarget", nil=True)
    errors = _child(node, "UserSettingErrors")
    settings = _child(node, "UserSettings")
    mine = {**values, "AutoDiscoverSMTPAddress": address}
    for name in asked:
        if name in mine:
            setting = _child(settings, "UserSetting")
            setting.set(f"{{{XSI}}}type", "StringSetting")
            _child(setting, "Name", name)
            _child(setting, "Value", mine[name])
        else:
            error = _child(errors, "UserSettingError")
            _child(error, "ErrorCode", "SettingIsNotAvailable")
            _child(error, "ErrorMessage", f"User setting '{name}' is not available. ")
            _child(error, "SettingName", name)


__all__ = ["AUTODISCOVER_PATH", "AutodiscoverAnswer", "get_user_settings"]
