"""Migrate Email Router settings to server-side synchronization: plan, review, apply, roll back.

From one or more routers' ``Microsoft.Crm.Tools.EmailAgent.xml`` (and their ``SystemState.xml``
when present) and the CRM as it is, :func:`build_plan` makes a :class:`MigrationPlan`: the email
server profiles (Microsoft's merge of each incoming/outgoing pair used together), every user,
queue and forward mailbox's settings, what cannot migrate and why, and warnings. Nothing changes
until :func:`apply_plan`, which is idempotent and keeps a record that :func:`rollback` undoes::

    result = migration.run({"configs": ["EmailAgent.xml"], "crm": "sqlite:///crm.sqlite"})
    result                                   # summary and first rows in Jupyter
    result.write_artifacts(run_dir)          # report.html, migration.xlsx, plan.json, CSVs
    run({... , "dry_run": False, "run_dir": run_dir})   # apply; apply-record.json undoes it

The mapping is one table (:mod:`~emailrouter_lib.migration.mapping`); the Test & Enable
schedule (200 mailboxes per 5 hours, queues first) is :func:`build_schedule`.
"""

from __future__ import annotations

from emailrouter_lib.migration.apply import ApplyRecord, apply_plan, plan_digest, rollback
from emailrouter_lib.migration.flow import MigrationResult, apply_result, load_routers, run
from emailrouter_lib.migration.model import (
    MailboxPlan,
    MigrationPlan,
    NotMigrated,
    OrganizationChange,
    PlanWarning,
    ProfilePlan,
)
from emailrouter_lib.migration.planner import PlanOptions, RouterInput, build_plan
from emailrouter_lib.migration.schedule import ScheduleRow, build_schedule
from emailrouter_lib.migration.writers import read_plan, write_plan

__all__ = [
    "ApplyRecord",
    "MailboxPlan",
    "MigrationPlan",
    "MigrationResult",
    "NotMigrated",
    "OrganizationChange",
    "PlanOptions",
    "PlanWarning",
    "ProfilePlan",
    "RouterInput",
    "ScheduleRow",
    "apply_plan",
    "apply_result",
    "build_plan",
    "build_schedule",
    "load_routers",
    "plan_digest",
    "read_plan",
    "rollback",
    "run",
    "write_plan",
]
