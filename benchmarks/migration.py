"""Migration planning time and peak memory at 2-3 sizes, to show it is linear (target < 2 s).

Generates a router configuration of U users and Q queues (Exchange incoming providers of 200
users each, one forward mailbox per 2,000 users, POP3 for the queues, one SMTP relay for all)
and a SQLite CRM that holds exactly those users, queues and their mailboxes. For each size it
times, in the same run: reading the file (``load_config``, the baseline), planning from the file
alone, and planning against the CRM (which reads every mailbox and profile row and looks every
id up). Prints medians, seconds per 1,000 mailboxes (flat = linear), planning/parse ratios and
the peak Python memory of one plan (tracemalloc).

    python benchmarks/migration.py [--sizes 2500,5000,10000] [--queues-per-user 0.05] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path

from emailrouter_lib.config import load_config
from emailrouter_lib.crm import init_crm, open_crm
from emailrouter_lib.crm.sqlite import insert_rows
from emailrouter_lib.migration import PlanOptions, build_plan

NAMESPACE = uuid.UUID("0e9c6f7e-5d33-4a38-9f0e-5a1d7c0b2f11")
PER_PROVIDER = 200
SEED_TIME = "2024-03-01T08:00:00Z"


def ids(kind: str, n: int) -> list[str]:
    return [str(uuid.uuid5(NAMESPACE, f"{kind}/{k}")) for k in range(n)]


def provider(body: list[str], **fields: str) -> str:
    lines = ["  <ProviderConfiguration>"]
    lines += [f"    <{name}>{value}</{name}>" for name, value in fields.items()]
    lines += [f"    {line}" for line in body]
    lines.append("  </ProviderConfiguration>")
    return "\n".join(lines)


def write_config(path: Path, users: list[str], queues: list[str]) -> None:
    exchange = "Microsoft.Crm.Tools.Email.Providers.ExchangePollingMailboxProvider"
    common = {
        "CrmServerUrl": "https://crm.contoso.local/Contoso",
        "EmailAuthMode": "WindowsAuthentication",
        "EmailAccessCredentials": "OtherSpecified",
        "EmailUser": "CONTOSO\\svc",
        "EmailPassword": "NOTAREALSECRET",
    }
    parts = ['<?xml version="1.0" encoding="utf-8"?>', "<Configuration>"]
    for start in range(0, len(users), PER_PROVIDER):
        group = users[start : start + PER_PROVIDER]
        site = start // 1000  # one Exchange profile per 1,000 users
        forward = start // PER_PROVIDER % 10 == 9  # every tenth provider reads a forward mailbox
        fields = {
            "ProviderClass": exchange,
            "ProfileName": f"Exchange site {site}",
            "Direction": "Inbound",
            "EmailServerType": "Exchange2013",
            "EmailServerUrl": f"https://mail{site}.contoso.example/EWS/Exchange.asmx",
            **common,
        }
        if forward:
            fields |= {"IsForwardMailbox": "true", "EmailAddress": f"fwd{start}@contoso.example"}
        parts.append(provider([f"<UserId>{u}</UserId>" for u in group], **fields))
    for start in range(0, len(queues), PER_PROVIDER):
        group = queues[start : start + PER_PROVIDER]
        parts.append(
            provider(
                [f"<QueueId>{q}</QueueId>" for q in group],
                ProviderClass="Microsoft.Crm.Tools.Email.Providers.Pop3PollingMailboxProvider",
                ProfileName="Queues POP3",
                Direction="Inbound",
                EmailServerUrl="pop.contoso.example:995",
                EmailAuthMode="ClearText",
                EmailAccessCredentials="UserSpecified",
            )
        )
    relay = [f"<UserId>{u}</UserId>" for u in users] + [f"<QueueId>{q}</QueueId>" for q in queues]
    parts.append(
        provider(
            relay,
            ProviderClass="Microsoft.Crm.Tools.Email.Providers.SmtpPollingSendEmailProvider",
            ProfileName="Relay",
            Direction="Outbound",
            EmailServerUrl="smtp.contoso.example:587",
            EmailAuthMode="Anonymous",
            EmailAccessCredentials="LocalSystem",
        )
    )
    parts.append("</Configuration>\n")
    path.write_text("\n".join(parts), encoding="utf-8")


def make_crm(path: Path, users: list[str], queues: list[str]) -> str:
    url = init_crm(f"sqlite:///{path}")
    crm = open_crm(url)
    try:
        with crm.transaction() as conn:
            insert_rows(
                conn,
                "systemuser",
                [
                    {
                        "systemuserid": u,
                        "fullname": f"User {k}",
                        "internalemailaddress": f"user{k}@contoso.example",
                        "emailrouteraccessapproval": 1,
                        "createdon": SEED_TIME,
                    }
                    for k, u in enumerate(users)
                ],
            )
            insert_rows(
                conn,
                "queue",
                [
                    {
                        "queueid": q,
                        "name": f"Queue {k}",
                        "emailaddress": f"queue{k}@contoso.example",
                        "emailrouteraccessapproval": 1,
                        "createdon": SEED_TIME,
                    }
                    for k, q in enumerate(queues)
                ],
            )
            insert_rows(
                conn,
                "mailbox",
                [
                    {
                        "mailboxid": str(uuid.uuid5(NAMESPACE, f"mailbox/{owner}")),
                        "name": f"Mailbox {k}",
                        "emailaddress": f"owner{k}@contoso.example",
                        "regardingobjectid": owner,
                        "regardingobjecttypecode": "systemuser" if k < len(users) else "queue",
                        "emailrouteraccessapproval": 1,
                        "createdon": SEED_TIME,
                    }
                    for k, owner in enumerate([*users, *queues])
                ],
            )
    finally:
        crm.close()
    return url


def timed(function, repeat: int) -> tuple[float, object]:
    times, value = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        value = function()
        times.append(time.perf_counter() - started)
    return statistics.median(times), value


def peak_memory(function) -> int:
    tracemalloc.start()
    try:
        function()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="2500,5000,10000", help="user counts, comma-separated")
    parser.add_argument("--queues-per-user", type=float, default=0.05)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]
    options = PlanOptions(created=SEED_TIME)

    print(
        f"{'users':>6} {'queues':>6} {'parse s':>8} {'plan s':>8} {'plan+crm s':>10} "
        f"{'plan s/1k':>9} {'crm/parse':>9} {'peak MiB':>9}  profiles mailboxes warnings"
    )
    rows = []
    with tempfile.TemporaryDirectory(prefix="migration-bench-") as folder:
        work = Path(folder)
        for n_users in sizes:
            n_queues = max(1, int(n_users * args.queues_per_user))
            users, queues = ids("user", n_users), ids("queue", n_queues)
            config_path = work / f"EmailAgent-{n_users}.xml"
            write_config(config_path, users, queues)
            crm_url = make_crm(work / f"crm-{n_users}.sqlite", users, queues)
            crm = open_crm(crm_url)
            try:
                parse_s, config = timed(lambda p=config_path: load_config(p), args.repeat)
                plan_s, _ = timed(lambda c=config: build_plan([c], None, options), args.repeat)
                full_s, plan = timed(
                    lambda c=config, k=crm: build_plan([c], k, options), args.repeat
                )
                peak = peak_memory(
                    lambda p=config_path, k=crm: build_plan([load_config(p)], k, options)
                )
            finally:
                crm.close()
            mailboxes = len(plan.mailboxes)
            rows.append((n_users, mailboxes, parse_s, plan_s, full_s))
            print(
                f"{n_users:>6} {n_queues:>6} {parse_s:>8.3f} {plan_s:>8.3f} {full_s:>10.3f} "
                f"{plan_s / mailboxes * 1000:>9.4f} {full_s / parse_s:>9.2f} "
                f"{peak / 2**20:>9.1f}  {len(plan.profiles):>8} {mailboxes:>9} "
                f"{len(plan.warnings):>8}"
            )
    small, large = rows[0], rows[-1]

    def growth(column: int) -> float:
        """Per-mailbox cost at the largest size over the smallest (1.0 = linear)."""
        return (large[column] / large[1]) / (small[column] / small[1])

    print(f"\nper-mailbox cost, {large[0]:,} users vs {small[0]:,} (1.0 = linear):")
    print(f"  plan from the file      {growth(3):5.2f}x  (target <= 1.5)")
    print(f"  plan against the CRM    {growth(4):5.2f}x")
    print(f"  read the file (baseline){growth(2):5.2f}x")
    total = large[2] + large[4]
    print(f"read + plan against the CRM at {large[0]:,} users: {total:.2f} s (target < 2 s)")
    return 0 if total < 2 and growth(3) <= 1.5 else 1


if __name__ == "__main__":
    sys.exit(main())
