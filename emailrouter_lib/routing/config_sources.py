"""Mailboxes from a router configuration: what ``EmailAgent.xml`` says, as mailbox URLs.

The old router read each incoming provider's server and the users and queues it lists (by CRM
GUID). Here each listed user or queue becomes one mailbox URL owned by it, its address looked up in
the CRM: ``pop3(s)://`` for a POP3 provider, ``ews(s)://`` for an Exchange one (its EWS URL, or
Autodiscover when the profile names none; Windows authentication is NTLM, Clear Text is Basic). The
file's passwords are encrypted with a key we cannot use, so the admin gives one secret *reference*
template instead, e.g. ``env:MAILBOX_PASSWORD_{local}`` (fields ``{address}``, ``{local}``, ``{id}``
and ``{login}``; the secret belongs to the login, so ``{local}`` is the login's local part), or a
single reference for a service account ("Other specified"), which reads the users' mailboxes with
ApplicationImpersonation (mailboxes/ews_url.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote, urlencode

from emailrouter_lib.config import ProviderConfig, RouterConfig
from emailrouter_lib.crm.base import CrmBackend
from emailrouter_lib.errors import RoutingError
from emailrouter_lib.mailboxes.ews_url import ews_url_for
from emailrouter_lib.secrets import is_reference


@dataclass(frozen=True)
class ConfigMailbox:
    """One mailbox the configuration names: a URL to route, or the reason it cannot be."""

    label: str
    url: str | None = None
    skipped: str | None = None


def mailboxes_from_config(
    config: RouterConfig, crm: CrmBackend, *, password: str | None
) -> list[ConfigMailbox]:
    if password is not None and not is_reference(password):
        raise RoutingError(
            "config_password must be a secret reference template such as env:PW_{local},"
            " file:/etc/emailrouter/{local}.secret or keyring:emailrouter/{address}"
        )
    wanted = [i for p in config.incoming for i in (*p.user_ids, *p.queue_ids)]
    recipients = crm.recipients_by_id(wanted) if wanted else {}
    found: list[ConfigMailbox] = []
    for provider in config.incoming:
        if provider.kind not in ("pop3", "exchange"):
            found.append(ConfigMailbox(provider.label, skipped=_unsupported(provider)))
            continue
        if provider.is_forward_mailbox:
            login = provider.email_user or provider.email_address
            found.append(_mailbox(provider, login, provider.email_address, None, password, True))
            continue
        for record_id in (*provider.user_ids, *provider.queue_ids):
            recipient = recipients.get(record_id.lower())
            if recipient is None:
                found.append(
                    ConfigMailbox(
                        f"{provider.label} / {record_id}",
                        skipped=f"user or queue {record_id} is not in the CRM; run Load Data"
                        " again or remove it from the configuration",
                    )
                )
                continue
            kind = "user" if recipient.entity == "systemuser" else "queue"
            owner = f"{kind}:{recipient.emailaddress}"
            if provider.kind == "exchange" and provider.credentials_kind == "local_system":
                found.append(
                    ConfigMailbox(
                        f"{provider.label} / {recipient.emailaddress}",
                        skipped="Local System Account credentials are the router machine's own "
                        "Windows account, which cannot log in from here; use Other specified "
                        "(a service account) in the profile, or give this mailbox as --mailbox",
                    )
                )
                continue
            login = (
                provider.email_user
                if provider.credentials_kind == "other_specified" and provider.email_user
                else recipient.emailaddress
            )
            found.append(
                _mailbox(provider, login, recipient.emailaddress, owner, password, False, record_id)
            )
    return found


def _mailbox(
    provider: ProviderConfig,
    login: str | None,
    address: str | None,
    owner: str | None,
    password: str | None,
    forward: bool,
    record_id: str = "",
) -> ConfigMailbox:
    label = f"{provider.label} / {address or record_id}"
    server = (provider.email_server_url or "").strip()
    exchange = provider.kind == "exchange"
    if not login or not (server or exchange) or (exchange and not address):
        what = "EWS mailbox address or login" if exchange else "POP3 server or login"
        return ConfigMailbox(label, skipped=f"the provider names no {what}")
    query: dict[str, str] = {}
    if owner:
        query["owner"] = owner
    if forward:
        query["forward"] = "1"
        query["after"] = "delete" if provider.delete_emails else "move:Processed"
    secret = _secret(password, login, address, record_id)
    if exchange:
        if provider.auth_mode_kind == "anonymous":
            return ConfigMailbox(label, skipped="Exchange needs a login; Anonymous is for SMTP")
        url = ews_url_for(
            server,
            login=login,
            mailbox=address or login,
            password=secret,
            auth="basic" if provider.auth_mode_kind == "clear_text" else None,
            use_ssl=provider.use_ssl,
            **query,
        )
        return ConfigMailbox(label, url=url)
    host, _, port = server.rpartition(":") if ":" in server else (server, "", "")
    scheme = "pop3" if provider.use_ssl is False else "pop3s"
    if secret:
        query["password"] = secret
    netloc = f"{quote(login, safe='')}@{host}" + (f":{port}" if port else "")
    return ConfigMailbox(label, url=f"{scheme}://{netloc}?{urlencode(query, safe=':/@{}')}")


def _secret(template: str | None, login: str, address: str | None, record_id: str) -> str | None:
    """The template filled in for one mailbox; the secret belongs to the login."""
    if template is None:
        return None
    local = login.split("@", 1)[0].split("\\")[-1]
    try:
        return template.format(address=address or login, local=local, id=record_id, login=login)
    except (KeyError, IndexError, ValueError):
        raise RoutingError(
            f"password template {template!r}: use only the fields {{address}}, {{local}}, "
            "{id} and {login}"
        ) from None


def _unsupported(provider: ProviderConfig) -> str:
    return f"provider class {provider.provider_class or '?'} is not one this tool can read"
