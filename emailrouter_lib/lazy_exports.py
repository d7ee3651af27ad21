"""Public names of a package, imported from its submodules on first use (PEP 562).

Why: ``emailrouter --help`` and a cron job routing an empty Maildir should not pay for pandas,
matplotlib and exchangelib, which only the audit, the reports and the Exchange modules use. A
package's ``__init__`` keeps offering ``audit.run`` or ``rules.RulePlan``, but the submodule that
defines a name is imported when the name is first read, not when the package is.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any


def lazy_exports(
    namespace: dict[str, Any], exports: Mapping[str, tuple[str, ...]]
) -> tuple[list[str], Callable[[str], Any], Callable[[], list[str]]]:
    """``__all__``, ``__getattr__`` and ``__dir__`` for the package whose globals are ``namespace``.

    ``exports`` maps each submodule (relative to the package) to the names it provides. A name is
    imported once, then kept in the package's namespace, so later reads cost a dict lookup.
    """
    package = namespace["__name__"]
    where = {name: module for module, names in exports.items() for name in names}

    def __getattr__(name: str) -> Any:
        module = where.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(f"{package}.{module}"), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted({*namespace, *where})

    return sorted(where), __getattr__, __dir__
