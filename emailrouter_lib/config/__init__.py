"""The Email Router's configuration files: read, validate, edit and write them back.

``Microsoft.Crm.Tools.EmailAgent.xml`` is read leniently and losslessly (any case, any order,
comments, BOMs, UTF-16; unknown elements kept and reported) into a :class:`RouterConfig`, and
written back with only the edited values changed. ``…SystemState.xml`` is read as simple
records when present. Parsing is safe against XXE, entity expansion and oversized files.

    config = load_config("Microsoft.Crm.Tools.EmailAgent.xml")
    report = validate_config(config)          # or validate_file(path)
    print(report)                             # FILE:LINE: severity [code] message
    config.system.log_level = 2
    write_config(config, path)                # backs the old file up first

The element vocabulary lives in one table, :mod:`emailrouter_lib.config.vocabulary`.
Malformed files raise :class:`~emailrouter_lib.errors.ConfigSyntaxError`; everything else is
a :class:`Finding`.
"""

from __future__ import annotations

from emailrouter_lib.config.findings import Finding, Severity
from emailrouter_lib.config.model import (
    ProviderConfig,
    ProviderOverrides,
    RouterConfig,
    SystemConfiguration,
    UnknownElement,
)
from emailrouter_lib.config.reader import classify, load_config, parse_guid
from emailrouter_lib.config.systemstate import (
    SYSTEM_STATE_NAME,
    StateRecord,
    SystemState,
    load_system_state,
    system_state_path,
)
from emailrouter_lib.config.validation import (
    ValidationReport,
    main_validate,
    validate_config,
    validate_file,
)
from emailrouter_lib.config.writer import write_config
from emailrouter_lib.config.xmlfile import MAX_CONFIG_BYTES

CONFIG_NAME = "Microsoft.Crm.Tools.EmailAgent.xml"

__all__ = [
    "CONFIG_NAME",
    "MAX_CONFIG_BYTES",
    "SYSTEM_STATE_NAME",
    "Finding",
    "ProviderConfig",
    "ProviderOverrides",
    "RouterConfig",
    "Severity",
    "StateRecord",
    "SystemConfiguration",
    "SystemState",
    "UnknownElement",
    "ValidationReport",
    "classify",
    "load_config",
    "load_system_state",
    "main_validate",
    "parse_guid",
    "system_state_path",
    "validate_config",
    "validate_file",
    "write_config",
]
