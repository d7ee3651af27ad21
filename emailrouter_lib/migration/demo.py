"""The migration demo: the reference sample configuration, pointed at the demo CRM's records.

``reference/samples/Microsoft.Crm.Tools.EmailAgent.xml`` (this project's reconstruction of a
router file) lists users and queues by GUIDs that the demo CRM does not have. The demo keeps the
sample byte for byte and swaps only those GUIDs for demo records, chosen so the plan shows the
interesting cases:

* user a01 → Alice Admin (approved, Exchange + SMTP),
* user a02 → Gina Pending (approval pending: a ``not-approved`` warning),
* user a03 → Frank Field (his mail arrives through the forward mailbox),
* queue b01 → Support, queue b02 → Sales (POP3 + SMTP without SSL: a ``non-ssl`` warning).

Bob Sales is left out, so the CRM-but-not-in-config check has something to find. A test checks
that :data:`SAMPLE_TEMPLATE` with the sample's own GUIDs put back is the reference file.
"""

# ruff: noqa: E501  (the template keeps the sample's long lines as they are)

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from emailrouter_lib.config import CONFIG_NAME
from emailrouter_lib.crm import init_crm
from emailrouter_lib.crm.demo import ALICE, FRANK, GINA, SALES, SUPPORT

# The sample's GUIDs, by the placeholder that stands for them in the template.
SAMPLE_IDS: dict[str, str] = {
    "USER_A01": "0a1b2c3d-13d8-e011-9077-00155d012a01",
    "USER_A02": "0a1b2c3d-13d8-e011-9077-00155d012a02",
    "USER_A03": "0a1b2c3d-13d8-e011-9077-00155d012a03",
    "QUEUE_B01": "5e6f7a8b-19d8-e011-9077-00155d012b01",
    "QUEUE_B02": "5e6f7a8b-19d8-e011-9077-00155d012b02",
}

# The demo CRM's records that take their place.
DEMO_IDS: dict[str, str] = {
    "USER_A01": ALICE.id,
    "USER_A02": GINA.id,
    "USER_A03": FRANK.id,
    "QUEUE_B01": SUPPORT.id,
    "QUEUE_B02": SALES.id,
}

# The sample's encrypted-looking password: tests check it never appears in any output.
SAMPLE_PASSWORD_TEXT = "AQAAANCMnd8BFdERjHoAwE/Cl+sBAAAA"

SAMPLE_TEMPLATE = r"""<?xml version="1.0" encoding="utf-8"?>
<!--
  A RECONSTRUCTED Email Router service configuration, written for this project.
  SystemConfiguration and ProviderOverrides follow Microsoft's published sample.
  The ProviderConfiguration vocabulary is reconstructed from the router's provider classes and their
  documented properties (DeleteEmails, IsForwardMailbox, MoveEmails, MaxMessageCount, ...) and from
  the few fragments of real files that are public (EmailAuthMode, UserId, QueueId, EmailAddress,
  CrmServerUrl). Real files may use other element names; readers must be lenient.
-->
<Configuration>
  <SystemConfiguration>
    <MaxThreads>50</MaxThreads>
    <MaxThreadExecution>600000</MaxThreadExecution>
    <SchedulingPeriod>1000</SchedulingPeriod>
    <ConfigRefreshPeriod>5000</ConfigRefreshPeriod>
    <ConfigUpdatePeriod>3600000</ConfigUpdatePeriod>
    <LogLevel>1</LogLevel>
    <LogFile>C:\EmailRouter\emailRouterLog.txt</LogFile>
    <ProviderOverrides>
      <CacheCapacity>1024</CacheCapacity>
      <PendingStatusDelay>300000</PendingStatusDelay>
      <SendingStatusDelay>1800000</SendingStatusDelay>
      <MaximumDeliveryAttempts>10</MaximumDeliveryAttempts>
      <EWSRetrieveMessageCount>10</EWSRetrieveMessageCount>
      <BatchSize>5</BatchSize>
      <RequestBatchSize>5</RequestBatchSize>
    </ProviderOverrides>
  </SystemConfiguration>

  <!-- Incoming, Exchange 2010 over EWS, one service account with full access ("Other specified") -->
  <ProviderConfiguration>
    <ProviderAssembly>Microsoft.Crm.Tools.EmailProviders.dll</ProviderAssembly>
    <ProviderClass>Microsoft.Crm.Tools.Email.Providers.ExchangePollingMailboxProvider</ProviderClass>
    <ProfileName>Exchange 2010 incoming</ProfileName>
    <Direction>Inbound</Direction>
    <EmailServerType>Exchange2010</EmailServerType>
    <CrmServerUrl>https://crm.contoso.local/Contoso</CrmServerUrl>
    <CrmAuthMode>WindowsAuthentication</CrmAuthMode>
    <EmailServerUrl>https://mail.contoso.local/EWS/Exchange.asmx</EmailServerUrl>
    <EmailAuthMode>WindowsAuthentication</EmailAuthMode>
    <EmailAccessCredentials>OtherSpecified</EmailAccessCredentials>
    <EmailUser>CONTOSO\svc-emailrouter</EmailUser>
    <EmailPassword>AQAAANCMnd8BFdERjHoAwE/Cl+sBAAAA</EmailPassword>
    <UseSsl>true</UseSsl>
    <MaxMessageCount>500</MaxMessageCount>
    <UserId>@USER_A01@</UserId>
    <UserId>@USER_A02@</UserId>
    <QueueId>@QUEUE_B01@</QueueId>
  </ProviderConfiguration>

  <!-- Incoming, the forward (sink) mailbox on the same Exchange -->
  <ProviderConfiguration>
    <ProviderAssembly>Microsoft.Crm.Tools.EmailProviders.dll</ProviderAssembly>
    <ProviderClass>Microsoft.Crm.Tools.Email.Providers.ExchangePollingMailboxProvider</ProviderClass>
    <ProfileName>Exchange 2010 incoming</ProfileName>
    <Direction>Inbound</Direction>
    <EmailServerType>Exchange2010</EmailServerType>
    <CrmServerUrl>https://crm.contoso.local/Contoso</CrmServerUrl>
    <EmailServerUrl>https://mail.contoso.local/EWS/Exchange.asmx</EmailServerUrl>
    <EmailAuthMode>WindowsAuthentication</EmailAuthMode>
    <EmailAccessCredentials>OtherSpecified</EmailAccessCredentials>
    <EmailUser>CONTOSO\svc-emailrouter</EmailUser>
    <EmailPassword>AQAAANCMnd8BFdERjHoAwE/Cl+sBAAAA</EmailPassword>
    <IsForwardMailbox>true</IsForwardMailbox>
    <ForwardMailboxName>CRM sink</ForwardMailboxName>
    <EmailAddress>crm-sink@contoso.com</EmailAddress>
    <DeleteEmails>true</DeleteEmails>
    <MoveEmails>true</MoveEmails>
    <UserId>@USER_A03@</UserId>
  </ProviderConfiguration>

  <!-- Incoming, a POP3 server for a second deployment's support queue -->
  <ProviderConfiguration>
    <ProviderAssembly>Microsoft.Crm.Tools.EmailProviders.dll</ProviderAssembly>
    <ProviderClass>Microsoft.Crm.Tools.Email.Providers.Pop3PollingMailboxProvider</ProviderClass>
    <ProfileName>POP3 incoming</ProfileName>
    <Direction>Inbound</Direction>
    <EmailServerType>POP3</EmailServerType>
    <CrmServerUrl>https://crm.contoso.local/Contoso</CrmServerUrl>
    <EmailServerUrl>pop.contoso-mail.net:995</EmailServerUrl>
    <EmailAuthMode>ClearText</EmailAuthMode>
    <EmailAccessCredentials>UserSpecified</EmailAccessCredentials>
    <UseSsl>true</UseSsl>
    <QueueId>@QUEUE_B02@</QueueId>
  </ProviderConfiguration>

  <!-- Outgoing, SMTP relay, anonymous -->
  <ProviderConfiguration>
    <ProviderAssembly>Microsoft.Crm.Tools.EmailProviders.dll</ProviderAssembly>
    <ProviderClass>Microsoft.Crm.Tools.Email.Providers.SmtpPollingSendEmailProvider</ProviderClass>
    <ProfileName>SMTP outgoing</ProfileName>
    <Direction>Outbound</Direction>
    <EmailServerType>SMTP</EmailServerType>
    <CrmServerUrl>https://crm.contoso.local/Contoso</CrmServerUrl>
    <EmailServerUrl>smtp.contoso.local:25</EmailServerUrl>
    <EmailAuthMode>Anonymous</EmailAuthMode>
    <EmailAccessCredentials>LocalSystem</EmailAccessCredentials>
    <UseSsl>false</UseSsl>
    <AccessType>SendAs</AccessType>
    <UserId>@USER_A01@</UserId>
    <UserId>@USER_A02@</UserId>
    <QueueId>@QUEUE_B01@</QueueId>
    <QueueId>@QUEUE_B02@</QueueId>
  </ProviderConfiguration>
</Configuration>
"""


@dataclass(frozen=True)
class MigrationDemo:
    """A fresh demo CRM and the sample-derived router configuration beside it."""

    workdir: Path
    crm_url: str
    config: Path


def render_config(ids: dict[str, str]) -> str:
    """The sample configuration with each placeholder replaced by ``ids[placeholder]``."""
    text = SAMPLE_TEMPLATE
    for placeholder, value in ids.items():
        text = text.replace(f"@{placeholder}@", value)
    return text


def prepare_migration_demo(workdir: str | Path) -> MigrationDemo:
    """Create (or recreate) the demo CRM and the demo configuration under *workdir*."""
    workdir = Path(workdir).resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    crm_url = f"sqlite:///{workdir / 'crm.sqlite'}"
    init_crm(crm_url, demo=True, force=True)
    config = workdir / CONFIG_NAME
    config.write_text(render_config(DEMO_IDS), encoding="utf-8", newline="")
    return MigrationDemo(workdir, crm_url, config)
