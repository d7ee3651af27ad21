"""Build one email server profile from the router providers a mailbox used together.

Each function here reads only :class:`~emailrouter_lib.config.ProviderConfig` fields that hold
no secret: the password element's text is never read by the config reader, and a profile that
needs one gets a secret *reference* the admin fills in.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

from emailrouter_lib.config import ProviderConfig
from emailrouter_lib.config.vocabulary import TLS_PORTS
from emailrouter_lib.migration import mapping as m
from emailrouter_lib.migration.model import ProfilePlan

NAME_LIMIT = 100  # emailserverprofile.name is 100 characters in Dataverse
PLAIN_PORTS = frozenset({25, 110, 143, 80})
DEFAULT_PASSWORD_REFERENCE = "env:EMAILROUTER_PROFILE_{slug}_PASSWORD"


def source_name(provider: ProviderConfig) -> str:
    """The router profile's name, or a readable stand-in for a nameless provider."""
    if provider.profile_name:
        return provider.profile_name.strip()
    host = location(provider)[0] or "unknown server"
    return f"{m.family(provider)} {host}"


def profile_name(incoming: ProviderConfig | None, outgoing: ProviderConfig | None) -> str:
    names = [source_name(p) for p in (incoming, outgoing) if p is not None]
    return " + ".join(dict.fromkeys(names))[:NAME_LIMIT]


def location(provider: ProviderConfig) -> tuple[str | None, int | None]:
    """(server location, port): an EWS URL as it is; ``host:port`` or ``pop3://host:port`` split."""
    text = (provider.email_server_url or "").strip()
    if not text:
        return None, None
    if provider.kind == "exchange" or text.lower().startswith(("http://", "https://")):
        try:
            port = urlsplit(text).port
        except ValueError:
            port = None
        return text, port
    parts = urlsplit(text if "://" in text else "//" + text)
    try:
        port = parts.port
    except ValueError:
        port = None
    return (parts.hostname or text), port


def uses_ssl(provider: ProviderConfig) -> bool:
    """What the router did: ``UseSsl`` when given, else ``https://`` or a TLS port, else not on
    a plain-text port; SSL otherwise (the server-side sync default)."""
    if provider.ssl_off:
        return False
    if provider.use_ssl is not None:
        return provider.use_ssl
    url, port = location(provider)
    if url and url.lower().startswith("https://"):
        return True
    if port in TLS_PORTS:
        return True
    return port not in PLAIN_PORTS


def password_reference(name: str, template: str) -> str:
    slug = re.sub(r"[^A-Za-z0-9]+", "_", name).strip("_").upper() or "PROFILE"
    return template.format(slug=slug, name=name)


def build_profile(
    incoming: ProviderConfig | None,
    outgoing: ProviderConfig | None,
    outcome: m.Outcome,
    *,
    crm_on_premises: bool,
    reference_template: str = DEFAULT_PASSWORD_REFERENCE,
) -> ProfilePlan:
    """The merged profile for a migratable pair (see :data:`mapping.MERGE_RULES`)."""
    name = profile_name(incoming, outgoing)
    if outcome == "exchange-online":
        profile = _exchange_online(name, incoming, outgoing, crm_on_premises)
    elif outcome == "exchange":
        profile = _exchange(name, incoming, outgoing)
    else:
        profile = _pop3_smtp(name, incoming, outgoing)
    profile.incoming_profile = source_name(incoming) if incoming else None
    profile.outgoing_profile = source_name(outgoing) if outgoing else None
    profile.source_providers = [
        f"{p.direction}: {source_name(p)}" for p in (incoming, outgoing) if p is not None
    ]
    if m.CREDENTIALS_PROFILE in (
        profile.incomingcredentialretrieval,
        profile.outgoingcredentialretrieval,
    ):
        profile.password_reference = password_reference(name, reference_template)
    sources = " + ".join(profile.source_providers)
    profile.description = f"Migrated from Email Router profiles ({sources})"[:2000]
    return profile


def _credentials(provider: ProviderConfig) -> int:
    found = m.credential_retrieval(provider)
    return m.CREDENTIALS_USER_OR_QUEUE if found is None else found


def _username(provider: ProviderConfig, retrieval: int) -> str | None:
    return provider.email_user if retrieval == m.CREDENTIALS_PROFILE else None


def _exchange(
    name: str, incoming: ProviderConfig | None, outgoing: ProviderConfig | None
) -> ProfilePlan:
    """On-premises Exchange over EWS. The mailbox side comes from the Exchange provider; SMTP
    and POP3 settings of the other side are dropped, since SSS reads and sends through EWS."""
    exchange_in = incoming if incoming is not None and m.family(incoming) == "exchange" else None
    exchange_out = outgoing if outgoing is not None and m.family(outgoing) == "exchange" else None
    main = exchange_in or exchange_out
    if main is None:  # MERGE_RULES send only pairs with an on-premises Exchange side here
        raise ValueError(f"{name}: no on-premises Exchange provider to build the profile from")
    send = exchange_out or main
    url_in, port_in = location(main)
    url_out, port_out = location(send)
    cred_in, cred_out = _credentials(main), _credentials(send)
    return ProfilePlan(
        name=name,
        servertype=m.SERVERTYPE_EXCHANGE,
        incomingserverlocation=url_in,
        outgoingserverlocation=url_out,
        incomingportnumber=port_in,
        outgoingportnumber=port_out,
        incomingusessl=uses_ssl(main),
        outgoingusessl=uses_ssl(send),
        incomingcredentialretrieval=cred_in,
        outgoingcredentialretrieval=cred_out,
        incomingauthenticationprotocol=m.authentication_protocol(main),
        outgoingauthenticationprotocol=m.authentication_protocol(send),
        incomingusername=_username(main, cred_in),
        outgoingusername=_username(send, cred_out),
        useautodiscover=url_in is None,
        usesamesettingsforoutgoingconnections=send is main,
        exchangeversion=m.exchange_version(main),
        moveundeliveredemails=bool(incoming is not None and incoming.move_emails),
    )


def _exchange_online(
    name: str,
    incoming: ProviderConfig | None,
    outgoing: ProviderConfig | None,
    crm_on_premises: bool,
) -> ProfilePlan:
    """Exchange Online: server-to-server authentication, autodiscover on, no credentials
    (Microsoft supports nothing else for SSS with Exchange Online)."""
    online = next(
        (p for p in (incoming, outgoing) if p is not None and m.family(p) == "exchange-online"),
        None,
    )
    url = (location(online)[0] if online else None) or m.EXCHANGE_ONLINE_EWS
    servertype = m.SERVERTYPE_EXCHANGE_ONLINE_HYBRID if crm_on_premises else m.SERVERTYPE_EXCHANGE
    return ProfilePlan(
        name=name,
        servertype=servertype,
        incomingserverlocation=url,
        outgoingserverlocation=url,
        incomingusessl=True,
        outgoingusessl=True,
        incomingcredentialretrieval=m.CREDENTIALS_SERVER_TO_SERVER,
        outgoingcredentialretrieval=m.CREDENTIALS_SERVER_TO_SERVER,
        useautodiscover=True,
        usesamesettingsforoutgoingconnections=True,
        moveundeliveredemails=bool(incoming is not None and incoming.move_emails),
    )


def _pop3_smtp(
    name: str, incoming: ProviderConfig | None, outgoing: ProviderConfig | None
) -> ProfilePlan:
    """POP3/SMTP ("Other"): each side keeps its own server, port, SSL and credentials."""
    receive = incoming or outgoing
    send = outgoing or incoming
    if receive is None or send is None:
        raise ValueError("a profile needs an incoming or an outgoing provider")
    url_in, port_in = location(receive) if incoming else (None, None)
    url_out, port_out = location(send) if outgoing else (None, None)
    cred_in, cred_out = _credentials(receive), _credentials(send)
    return ProfilePlan(
        name=name,
        servertype=m.SERVERTYPE_OTHER,
        incomingserverlocation=url_in,
        outgoingserverlocation=url_out,
        incomingportnumber=port_in,
        outgoingportnumber=port_out,
        incomingusessl=uses_ssl(receive),
        outgoingusessl=uses_ssl(send),
        incomingcredentialretrieval=cred_in,
        outgoingcredentialretrieval=cred_out,
        incomingauthenticationprotocol=m.authentication_protocol(receive),
        outgoingauthenticationprotocol=m.authentication_protocol(send),
        incomingusername=_username(receive, cred_in),
        outgoingusername=_username(send, cred_out),
        useautodiscover=False,
        usesamesettingsforoutgoingconnections=incoming is None or outgoing is None,
        moveundeliveredemails=bool(incoming is not None and incoming.move_emails),
    )
