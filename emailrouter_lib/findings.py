"""Findings: what a reader, a check or an audit noticed that an admin should see, without failing.

Like the stdlib ``email`` package's *defects*, findings are collected on a result rather than
raised, so one run shows every problem at once instead of stopping at the first. Every flow uses
this one shape, ``Finding(severity, code, message, where)``; a flow's own kind adds what only it
knows (a configuration file's line, a migration warning's profile) and says ``where`` from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning", "info"]

SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info")


@dataclass(frozen=True)
class Finding:
    """One observation: how bad (``severity``), a stable ``code`` scripts can filter on, the
    ``message`` for a person (never a secret value), and ``where`` it was seen (a file and
    line, a mailbox, a profile), when that is known."""

    severity: Severity
    code: str
    message: str
    where: str | None = None

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, not {self.severity!r}")

    def __str__(self) -> str:
        place = f"{self.where}: " if self.where else ""
        return f"{place}{self.severity} [{self.code}] {self.message}"


__all__ = ["SEVERITIES", "Finding", "Severity"]
