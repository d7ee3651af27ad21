"""A routing report built from hostile mail runs no injected script in headless Chromium: what
held in issue 12 must keep holding.

Messages whose Subject, From name, body and attachment name carry ``<script>``, ``<img onerror>``
and ``javascript:`` payloads (and a mailbox folder named like one) go through the real route;
the run's report.html is then opened in the real Chromium with listeners on dialogs, page errors
and console errors. Every payload is set to flag ``window.__injected`` and open a dialog, so a
payload that runs is seen whichever way it got in.
"""

from __future__ import annotations

from email.message import EmailMessage

from routing_helpers import demo_crm, drop, maildir_url, message, route

RUN = "window.__injected=1;alert(1)"
SCRIPT = f"<script>{RUN}</script>"
IMAGE = f'"><img src=x onerror="{RUN}">'
LINK = f"javascript:{RUN}"
SVG = f"<svg onload={RUN}>"
PAYLOADS = (SCRIPT, IMAGE, LINK, SVG)


def hostile_messages() -> list[EmailMessage | bytes]:
    found: list[EmailMessage | bytes] = []
    for n, payload in enumerate(PAYLOADS):
        msg = message(
            f"Re: {payload}",
            sender=f'"{payload}" <carol{n}@fabrikam.example>',
            body=f"<p>{payload}</p><a href='{LINK}'>open</a>\n",
        )
        msg.add_alternative(f"<html><body>{payload}<a href='{LINK}'>x</a></body></html>", "html")
        msg.add_attachment(b"data", "application", "octet-stream", filename=f"{payload}.html")
        found.append(msg)
    # A bounce (skipped) and a message that is not one (quarantined) keep their text in the rows.
    found.append(
        message(SCRIPT, sender="MAILER-DAEMON@fabrikam.example", X_MS_Exchange_Message_Is_Ndr="")
    )
    found.append(b"\xd0\xcf\x11\xe0" + SCRIPT.encode() + IMAGE.encode())
    return found


def test_a_report_of_hostile_mail_runs_no_injected_script(chromium, tmp_path):
    maildir = tmp_path / f"inbox {IMAGE}"
    drop(maildir, *hostile_messages())
    result = route(
        demo_crm(tmp_path),
        maildir_url(maildir, owner="queue:support@contoso.example"),
        run_id="hostile-run",
    )
    # every message has its outcome (one unparseable payload is quarantined), the mailbox read
    assert [m.status for m in result.mailboxes] == ["ok"] and len(result.rows) == len(PAYLOADS) + 2
    assert result.counts.get("created", 0) >= 2  # the payloads reach the created rows too
    report = result.write_artifacts(tmp_path / "run")["report.html"]

    page = chromium.new_page()
    seen: dict[str, list] = {"dialogs": [], "errors": [], "console": []}
    page.on("dialog", lambda d: (seen["dialogs"].append(d.message), d.dismiss()))
    page.on("pageerror", lambda e: seen["errors"].append(str(e)))
    page.on("console", lambda m: seen["console"].append((m.type, m.text)))
    try:
        page.goto(report.resolve().as_uri(), wait_until="load", timeout=30_000)
        page.wait_for_selector("html[data-report-ready='1']", timeout=10_000)  # its own script ran
        for button in page.locator("thead button").all():  # sorting re-renders the rows
            button.click()
        page.locator("input[data-filter]").first.fill("fabrikam")
        body = page.inner_text("body")
        injected = page.evaluate("() => window.__injected === undefined ? null : 1")
        scripts = page.locator("script").count()
        handlers = page.evaluate(
            """() => Array.from(document.querySelectorAll('*')).flatMap(e =>
                Array.from(e.attributes).filter(a => a.name.startsWith('on')).map(a => a.name))"""
        )
        links = page.evaluate(
            "() => Array.from(document.querySelectorAll('a[href]')).map(a => a.href)"
        )
    finally:
        page.close()
    assert injected is None and seen["dialogs"] == [] and seen["errors"] == []
    assert [m for m in seen["console"] if m[0] == "error"] == []
    assert scripts == 1 and handlers == []  # the report's own script; no injected handler
    assert not [href for href in links if href.lower().startswith("javascript:")]
    assert SCRIPT in body and "onerror" in body  # shown as text, not run
