"""A routing dry run decides as a real run does and changes nothing (issue 14).

On the demo (two Maildirs, one with a queue owner, one decided by To/Cc; the seeded CRM with
auto-created contacts, smart matching and tracking tokens), ``emailrouter route --dry-run`` must
report for every message the outcome the real run then gives (``would-create`` for ``created``,
``would-quarantine:x`` for ``quarantined:x``), and leave the CRM file, every Maildir file and the
ledger (here: its absence) byte for byte as they were.
"""

from __future__ import annotations

import csv
import hashlib
from pathlib import Path

import pytest
from routing_helpers import drop, maildir_url, message, route

from emailrouter_lib import routing
from emailrouter_lib.cli import main
from emailrouter_lib.demo.environment import prepare_demo_environment
from emailrouter_lib.errors import ParameterError
from emailrouter_lib.routing.dry_run import DryRunCrm, real_outcome


def _fingerprint(folder: Path) -> dict[str, str]:
    """Every file under *folder* (CRM, its WAL, ledgers, Maildirs) by path, with a hash."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def _rows(run_dir: Path) -> dict[tuple[str, str], str]:
    with (run_dir / "results.csv").open(encoding="utf-8", newline="") as f:
        return {(r["mailbox"], r["item_key"]): r["outcome"] for r in csv.DictReader(f)}


def test_dry_run_on_the_demo_gives_the_real_outcomes_and_changes_nothing(tmp_path, capsys):
    env = prepare_demo_environment(tmp_path / "demo")
    before = _fingerprint(env.workdir)
    args = ["route", "--crm", env.crm_url, "--quiet", "--outgoing"]
    for url in env.mailbox_urls:
        args += ["--mailbox", url]

    assert main([*args, "--dry-run", "--run-dir", str(tmp_path / "dry")]) == 0
    printed = capsys.readouterr().out
    assert _fingerprint(env.workdir) == before, "the dry run changed a file"
    assert "ok (dry run, nothing changed):" in printed
    assert "would create" in printed.splitlines()[-1]

    main([*args, "--run-dir", str(tmp_path / "real")])
    dry, real = _rows(tmp_path / "dry"), _rows(tmp_path / "real")
    assert dry.keys() == real.keys() and len(dry) > 30
    assert {k: real_outcome(o) for k, o in dry.items()} == real
    assert "would-create" in dry.values() and "created" not in dry.values()


def test_a_dry_run_after_a_real_run_sees_nothing_new_and_writes_no_ledger(tmp_path):
    crm_url = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    from emailrouter_lib.crm import init_crm

    init_crm(crm_url, demo=True)
    box = tmp_path / "inbox"
    drop(box, message("first"), message("second"))
    url = maildir_url(box, owner="queue:support@contoso.example")
    first = route(crm_url, url)
    assert first.counts == {"created": 2}
    drop(box, message("third"))
    before = _fingerprint(tmp_path)
    dry = route(crm_url, url, dry_run=True)
    assert dry.counts == {"would-create": 1}
    assert dry.mailboxes[0].already_done == 2
    assert _fingerprint(tmp_path) == before


def test_copies_across_batches_are_duplicates_in_a_dry_run_too(tmp_path):
    crm_url = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    from emailrouter_lib.crm import init_crm

    init_crm(crm_url, demo=True)
    box = tmp_path / "inbox"
    same = message("twice", message_id="<same@example.test>")
    drop(box, same, same, message("other"))
    url = maildir_url(box, owner="queue:support@contoso.example")
    dry = route(crm_url, url, dry_run=True, batch_size=1)
    real = route(crm_url, url, batch_size=1)
    assert sorted(real_outcome(r.outcome) for r in dry.rows) == sorted(r.outcome for r in real.rows)
    assert sorted(r.outcome for r in dry.rows) == ["duplicate", "would-create", "would-create"]


def test_the_dry_run_crm_refuses_a_write_it_does_not_know(tmp_path):
    """A backend method a dry run has not been taught is refused, never passed through."""

    class Backend:
        def update_email_status(self, changes):  # a write
            raise AssertionError("reached the CRM")

        def organization(self):
            return "org"

    crm = DryRunCrm(Backend())
    assert crm.organization() == "org"
    with pytest.raises(AttributeError, match="dry run"):
        crm.update_email_status([])


def test_dry_run_must_be_a_boolean(tmp_path):

    with pytest.raises(ParameterError, match="dry_run"):
        routing.run({"mailboxes": ["maildir:///x"], "crm": "sqlite:///x.db", "dry_run": "yes"})


def test_the_dry_run_report_says_so(tmp_path):
    env = prepare_demo_environment(tmp_path / "demo")
    result = routing.run(
        {"mailboxes": env.mailbox_urls, "crm": env.crm_url, "progress": False, "dry_run": True}
    )
    result.write_artifacts(tmp_path / "run")
    page = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    assert "Dry run, nothing was changed" in page and "Would be created (dry run)" in page
    assert '"dry_run": true' in (tmp_path / "run" / "summary.json").read_text(encoding="utf-8")
