"""Findings about a router configuration file: the one :class:`~emailrouter_lib.findings.Finding`
shape, located by file and line.

Like the stdlib ``email`` package's *defects*, findings are collected on the result rather than
raised, so one run shows every problem in a file instead of stopping at the first.
"""

from __future__ import annotations

from dataclasses import dataclass

from emailrouter_lib import findings
from emailrouter_lib.findings import SEVERITIES, Severity


@dataclass(frozen=True)
class Finding(findings.Finding):
    """One observation about a configuration file; ``where`` is ``FILE:LINE`` (or ``FILE``), the
    prefix compilers and editors understand.

    ``message`` never contains a secret value: readers only ever name the element that held it.
    """

    file: str | None = None
    line: int | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.where is None:
            file = self.file or "<config>"
            object.__setattr__(self, "where", f"{file}:{self.line}" if self.line else file)

    def __str__(self) -> str:
        return f"{self.where}: {self.severity} [{self.code}] {self.message}"


__all__ = ["SEVERITIES", "Finding", "Severity"]
