"""Migrate Email Router settings to server-side synchronization: plan, review, apply, roll back.

From one or more routers' ``Microsoft.Crm.Tools.EmailAgent.xml`` (and their ``SystemState.xml``
when present) and the CRM as it is, :func:`build_plan` makes a :class:`MigrationPlan`: the email
server profiles (Microsoft's merge of each incoming/outgoing pair used together), every user,
queue and forward mailbox's settings, what cannot migrate and why, and warnings. Nothing changes
until :func:`apply_plan`, which is idempotent and keeps a record that :func:`rollback` undoes::

    result = migration.run({"config": ["EmailAgent.xml"], "crm": "sqlite:///crm.sqlite"})
    result                                   # summary and first rows in Jupyter
    result.write_artifacts(run_dir)          # report.html, migration.xlsx, plan.json, CSVs
    run({... , "dry_run": False, "run_dir": run_dir})   # apply; apply-record.json undoes it

The mapping is one table (:mod:`~emailrouter_lib.migration.mapping`); the Test & Enable
schedule (200 mailboxes per 5 hours, queues first) is :func:`build_schedule`, and one batch of it
is put into the CRM as a separate step: :func:`plan_test_and_enable`, then
:func:`apply_test_and_enable` ("Process Email From" and the Test & Enable flag; rollback undoes
it too).
"""

from __future__ import annotations

from emailrouter_lib.lazy_exports import lazy_exports

# Imported on first use (start-up time: emailrouter_lib.lazy_exports says why).
__all__, __getattr__, __dir__ = lazy_exports(
    globals(),
    {
        "apply": (
            "ApplyRecord",
            "apply_plan",
            "plan_digest",
            "rollback",
        ),
        "enable": (
            "EnablePlan",
            "EnableRow",
            "apply_test_and_enable",
            "plan_test_and_enable",
        ),
        "flow": (
            "MigrationParams",
            "MigrationResult",
            "apply_result",
            "enable_result",
            "load_routers",
            "run",
        ),
        "model": (
            "MailboxPlan",
            "MigrationPlan",
            "NotMigrated",
            "OrganizationChange",
            "PlanWarning",
            "ProfilePlan",
        ),
        "planner": (
            "PlanOptions",
            "RouterInput",
            "build_plan",
        ),
        "schedule": (
            "ScheduleRow",
            "build_schedule",
        ),
        "writers": (
            "read_plan",
            "write_plan",
        ),
    },
)
