"""Findings: what a reader or a check noticed that an admin should see, without failing.

Like the stdlib ``email`` package's *defects*, findings are collected on the result rather than
raised, so one run shows every problem in a file instead of stopping at the first.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning", "info"]

SEVERITIES: tuple[Severity, ...] = ("error", "warning", "info")


@dataclass(frozen=True)
class Finding:
    """One observation about a configuration file, located by file and line.

    ``message`` never contains a secret value: readers only ever name the element that held it.
    """

    severity: Severity
    code: str
    message: str
    file: str | None = None
    line: int | None = None

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, not {self.severity!r}")

    @property
    def where(self) -> str:
        """``FILE:LINE`` (or just ``FILE``), the prefix compilers and editors understand."""
        file = self.file or "<config>"
        return f"{file}:{self.line}" if self.line else file

    def __str__(self) -> str:
        return f"{self.where}: {self.severity} [{self.code}] {self.message}"
