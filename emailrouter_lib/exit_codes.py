"""One exit-code scheme for every notebook run and every ``emailrouter`` command.

Cron, systemd and Airflow see only the exit status, so it must tell the cases an admin handles
differently apart, the same way everywhere:

    0  OK             everything went through
    1  FAILURES       the run finished, but some mailbox or message failed (a mailbox that could
                      not be reached, a quarantined message, an email the server refused, a rule
                      that did not apply): look at the report, the rest was done
    2  USAGE          bad parameters or a bad command line (a wrong URL, a literal password, an
                      unset ``env:`` variable, a missing CRM file): nothing ran; fix the input
    3  RUN_FAILED     the notebook or command itself failed (a cell raised, the kernel died, the
                      CRM broke off): the run stopped part way; rerunning is safe (exactly once)

:func:`for_error` maps an exception to 2 or 3; :func:`for_result` maps a finished run's ``ok``.
"""

from __future__ import annotations

from emailrouter_lib.errors import (
    ConfigError,
    CrmPathError,
    CrmURLError,
    MailboxURLError,
    NotebookParameterError,
    ParameterError,
    RoutingError,
    SecretError,
)

__all__ = ["FAILURES", "OK", "RUN_FAILED", "USAGE", "USAGE_ERRORS", "for_error", "for_result"]

OK = 0
FAILURES = 1
USAGE = 2
RUN_FAILED = 3

# What the caller got wrong, as opposed to what went wrong while running.
USAGE_ERRORS: tuple[type[Exception], ...] = (
    ConfigError,
    SecretError,
    MailboxURLError,
    CrmURLError,
    CrmPathError,
    RoutingError,
    ParameterError,
    NotebookParameterError,
)


def for_error(exc: BaseException) -> int:
    """2 for a usage error (nothing ran), 3 for a run that failed part way."""
    return USAGE if isinstance(exc, USAGE_ERRORS) else RUN_FAILED


def for_result(ok: bool) -> int:
    """0 when the finished run's result is ok, else 1."""
    return OK if ok else FAILURES
