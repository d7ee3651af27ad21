"""Rule deployment against the protocol-level fake Exchange: plan, apply, verify, remove.

The fake speaks real SOAP to the real exchangelib; the request counts come from its log.
"""

from __future__ import annotations

from collections import Counter

import pytest
from fixtures_ews import FORWARD_BOX, SERVICE, ews_url
from fixtures_rules import (
    RULE_NAME,
    add_mailboxes,
    deliver_through_rules,
    rule_names,
    rule_xml,
    rules_url,
    user_address,
)
from routing_helpers import crm_store, demo_crm, message, route

from emailrouter_lib import rules
from emailrouter_lib.crm import demo
from emailrouter_lib.mailboxes.ews_account import connect
from emailrouter_lib.mailboxes.ews_url import parse_ews_url
from emailrouter_lib.rules.targets import Target

ERROR_BOX = user_address(46)
MISSING_BOX = user_address(49)


def targets(n: int = 50) -> list[Target]:
    return [Target(user_address(i), f"user {i}", "test", FORWARD_BOX) for i in range(n)] + [
        Target(FORWARD_BOX, "forward mailbox", "test", None, wanted=False, skip="forward")
    ]


def mixed_org(server) -> dict[str, str]:
    """50 mailboxes in mixed starting states; the state of each, by address."""
    states = {}
    add_mailboxes(server, [user_address(i) for i in range(49)])  # 49 has no mailbox
    for i in range(50):
        box = user_address(i)
        if i < 15 or i in (47, 48):
            states[box] = "none"
        elif i < 25:
            server.seed_rule(box, rule_xml())
            states[box] = "ours"
        elif i == 25:
            server.seed_rule(box, rule_xml(enabled=False))
            states[box] = "disabled"
        elif i == 26:
            server.seed_rule(box, rule_xml(forward_to="someone@elsewhere.example"))
            states[box] = "elsewhere"
        elif i == 27:
            server.seed_rule(box, rule_xml(except_from=None))
            states[box] = "no exception"
        elif i == 28:
            server.seed_rule(box, rule_xml())
            server.seed_rule(box, rule_xml(priority=2))
            states[box] = "duplicate"
        elif i < 40:  # users' own rules, some with ours already, some altered
            server.seed_rule(
                box,
                rule_xml(
                    "Newsletters to junk", forward_to=None, except_from=None, move_to_junk=True
                ),
            )
            server.seed_rule(
                box,
                rule_xml(
                    "Boss",
                    forward_to="me@home.example",
                    except_from=None,
                    contains_subject="urgent",
                    priority=2,
                ),
            )
            if i % 3 == 0:
                server.seed_rule(box, rule_xml(priority=3))
            elif i % 3 == 1:
                server.seed_rule(box, rule_xml(enabled=False, priority=3))
            states[box] = "own rules"
        elif i < 45:
            server.seed_rule(
                box, rule_xml("Private", forward_to="me@home.example", except_from=None)
            )
            states[box] = "own rules"
        elif i == 45:  # a user's rule that happens to carry our name, but is not ours
            server.seed_rule(box, rule_xml(forward_to=None, except_from=None, move_to_junk=True))
            states[box] = "same name"
        elif i == 46:
            states[box] = "error"
        elif i == 49:
            states[box] = "missing"
    server.inject("busy", op="GetInboxRules", mailbox=ERROR_BOX, times=10_000, back_off_ms=5000)
    return states


def own_rules(server, box: str) -> list[str]:
    return [n for n in rule_names(server, box) if n != RULE_NAME]


def per_mailbox(server, op: str | None = None) -> Counter:
    return Counter(m for r in server.requests(op) for m in r.mailboxes)


def changing(server) -> int:
    return len(server.requests("UpdateInboxRules"))


def params(server, **extra) -> dict:
    url = rules_url(server, auth="basic", max_wait="0", **extra.pop("url", {}))
    return {"ews": url, "max_concurrency": 4, **extra}


def test_plan_apply_verify_on_fifty_mixed_mailboxes(rules_ews):
    server = rules_ews
    states = mixed_org(server)
    before_own = {box: own_rules(server, box) for box in states if states[box] != "missing"}

    plan = rules.run(params(server), targets=targets())  # dry run: reads only
    actions = {r.mailbox: r.action for r in plan.plan.rows}
    assert changing(server) == 0
    expected = {
        "none": "create",
        "ours": "unchanged",
        "disabled": "update",
        "elsewhere": "update",
        "no exception": "update",
        "duplicate": "update",
        "same name": "skip",
        "error": "error",
        "missing": "skip",
    }
    for box, state in states.items():
        if state != "own rules":
            assert actions[box] == expected[state], (box, state, plan.plan.row(box).reason)
    assert actions[FORWARD_BOX] == "skip"
    assert "not found" in plan.plan.row(MISSING_BOX).reason
    assert "throttling" in plan.plan.row(ERROR_BOX).reason
    assert "forwards to someone@elsewhere.example" in plan.plan.row(user_address(26)).reason
    assert "duplicate" in plan.plan.row(user_address(28)).reason

    server.clear_log()
    first = rules.run(params(server, dry_run=False), targets=targets())
    outcomes = Counter(r.outcome for r in first.applied)
    assert outcomes["error"] == 0  # the error mailbox failed while planning, not applying
    # no rule: 0-14, 47, 48; own rules without ours: 29, 32, 35, 38 and 40-44
    assert outcomes["created"] == plan.counts["create"] == 17 + 4 + 5
    assert outcomes["updated"] == plan.counts["update"] == 4 + 3  # 25-28; 31, 34, 37 disabled
    assert {v.status for v in first.verified} == {"ok", "skipped", "error"}
    assert not first.drift
    # every mailbox that could get the rule has exactly one rule of ours, the users' rules stay
    for box, state in states.items():
        if state in ("missing", "error", "same name"):
            continue
        assert rule_names(server, box).count(RULE_NAME) == 1, box
        assert own_rules(server, box) == before_own[box], box
    assert own_rules(server, user_address(45)) == []  # the same-named rule was left alone
    assert rule_names(server, user_address(45)) == [RULE_NAME]
    assert server.rules(SERVICE) == []  # nothing landed in the service account's mailbox

    server.clear_log()
    second = rules.run(params(server, dry_run=False, verify=False), targets=targets())
    assert changing(server) == 0  # the second apply changes nothing
    assert set(r.outcome for r in second.applied) <= {"unchanged", "skipped"}
    reads = per_mailbox(server, "GetInboxRules")
    assert max(reads.values()) == 1


def test_request_count_per_mailbox_first_and_unchanged_rerun(rules_ews):
    server = rules_ews
    add_mailboxes(server, [user_address(i) for i in range(20)])
    server.seed_rule(user_address(3), rule_xml(enabled=False))
    run = dict(params(server, dry_run=False, verify=False))
    rules.run(run, targets=targets(20))
    first = per_mailbox(server)
    assert set(first.values()) == {2}  # read + update, even for the altered one
    server.clear_log()
    rules.run(run, targets=targets(20))
    assert set(per_mailbox(server).values()) == {1} and changing(server) == 0


def test_remove_takes_only_our_rules(rules_ews):
    server = rules_ews
    states = mixed_org(server)
    rules.run(params(server, dry_run=False), targets=targets())
    before_own = {box: own_rules(server, box) for box in states if states[box] != "missing"}
    server.clear_log()
    removed = rules.run(params(server, dry_run=False, mode="remove"), targets=targets())
    assert not removed.drift
    assert Counter(r.outcome for r in removed.applied)["removed"] == 50 - 3  # not 45, 46, 49
    for box, state in states.items():
        if state == "missing":
            continue
        assert own_rules(server, box) == before_own[box], box
        if state != "same name":
            assert RULE_NAME not in rule_names(server, box)
    assert rule_names(server, user_address(45)) == [RULE_NAME]  # not ours: kept
    again = rules.run(params(server, dry_run=False, mode="remove"), targets=targets())
    assert set(r.outcome for r in again.applied) <= {"unchanged", "skipped"}


@pytest.mark.parametrize("access", ["delegate", "impersonation"])
def test_the_rule_lands_in_the_target_mailbox(rules_ews, access):
    server = rules_ews
    add_mailboxes(server, [user_address(1)])
    only = targets(2)[1:2]
    result = rules.run(params(server, dry_run=False, url={"access": access}), targets=only)
    assert [r.outcome for r in result.applied] == ["created"]
    assert rule_names(server, user_address(1)) == [RULE_NAME]
    assert server.rules(SERVICE) == []
    update = server.requests("UpdateInboxRules")[0]
    assert update.mailboxes == (user_address(1),)
    assert (update.impersonated is None) == (access == "delegate")


def test_exchangelib_alone_puts_a_delegate_rule_into_the_service_account(rules_ews):
    """The trap our MailboxSmtpAddress avoids (reference/exchange-ews.md §1), shown once."""
    from exchangelib.errors import ResponseMessageError
    from fixtures_ews import PASSWORD

    server = rules_ews
    add_mailboxes(server, [user_address(1)])
    settings = parse_ews_url(
        rules_url(server, auth="basic", access="delegate", mailbox=user_address(1))
    )
    account = connect(settings, PASSWORD)
    spec = rules.RuleSpec(RULE_NAME, FORWARD_BOX).rule()
    from emailrouter_lib.mailboxes.ews_rules import _to_ews

    rule = _to_ews(spec)
    rule.account = account
    with pytest.raises(ResponseMessageError):
        account.create_rule(rule)
    assert rule_names(server, SERVICE) == [RULE_NAME] and server.rules(user_address(1)) == []


def test_no_permission_is_a_skip_with_manual_steps(rules_ews):
    server = rules_ews
    server.add_user(user_address(7))  # no FullAccess for the service account
    result = rules.run(params(server, url={"access": "delegate"}), targets=targets(8)[7:8])
    row = result.plan.rows[0]
    assert row.action == "skip" and row.manual and "no permission" in row.reason


def test_mail_to_a_ruled_mailbox_reaches_the_forward_mailbox_and_routes_for_the_user(
    rules_ews, tmp_path
):
    server = rules_ews
    crm_url = demo_crm(tmp_path)
    add_mailboxes(server, [demo.FRANK.address])
    result = rules.run(
        {
            "crm": crm_url,
            "ews": rules_url(server, auth="basic", access="delegate"),
            "dry_run": False,
        }
    )
    assert [(r.mailbox, r.outcome) for r in result.applied if r.outcome != "skipped"] == [
        (demo.FRANK.address, "created")
    ]
    assert not result.drift

    original = message("Order question", to=demo.FRANK.address)
    assert deliver_through_rules(server, demo.FRANK.address, original) == [FORWARD_BOX]
    wrapped = server.items(FORWARD_BOX)
    assert len(wrapped) == 1 and wrapped[0].attachments  # forwarded as an attachment
    # the rule's exception: mail from the forward mailbox is not sent back
    assert (
        deliver_through_rules(server, demo.FRANK.address, message("loop?", sender=FORWARD_BOX))
        == []
    )

    routed = route(crm_url, ews_url(server, FORWARD_BOX, forward="1", after="delete", auth="basic"))
    assert [r.outcome for r in routed.rows] == ["created"]
    email = crm_store(crm_url).email(routed.rows[0].activityid)
    assert email["messageid"] == original["Message-ID"]
    assert email["acceptingentityid"] == demo.FRANK.id
