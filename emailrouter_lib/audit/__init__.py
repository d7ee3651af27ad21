"""Mailbox audit: what an admin looks at before deciding anything.

For every mailbox named by mailbox URLs, router configuration files and the CRM: can we log in
(Test Access, with the server's error text), what sits in the Inbox over a window by message
class, tracked or not, the oldest item no routing run has handled, what the CRM says (delivery
methods, approval, mailbox status) and where it disagrees with the configuration, and how the last
routing run ended. Mailboxes are probed by a bounded thread pool, each with socket timeouts and a
time budget; nothing in a mailbox, the CRM or the ledger is changed.

    result = audit.run({"crm": "sqlite:///crm.sqlite", "mailboxes": [...], "since": "30d"})
    result.write_artifacts(run_dir)     # report.html, audit.xlsx, CSVs, summary.json

Any source ``open_source`` can open is audited the same way (POP3, IMAP, Maildir, .eml
directories, Exchange over ``ews://``/``ewss://``). Where the server knows each item's class (EWS
``ItemClass``) the counts use it instead of inferring the class from MIME. For every user and queue
whose incoming delivery method is Forward Mailbox, the audit also reads the mailbox's inbox rules
once and says whether our forward rule is present and correct, missing, altered (how), or cannot
be checked (why), judged by the rules package exactly as a deployment plan would.
"""

from __future__ import annotations

from emailrouter_lib.lazy_exports import lazy_exports

# Imported on first use (start-up time: emailrouter_lib.lazy_exports says why).
__all__, __getattr__, __dir__ = lazy_exports(
    globals(),
    {
        "params": ("AuditParams",),
        "result": (
            "AuditResult",
            "AuditRow",
        ),
        "flow": ("run",),
    },
)
