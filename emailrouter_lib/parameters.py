"""Each flow declares its parameters once: name, type, default, help, and whether it is a secret.

A flow's parameters class is a dataclass whose fields are made with :func:`param`. From that one
declaration come the check of a parameters mapping (unknown names refused with the known ones
listed, ``None`` meaning the default, literal secrets refused), the hash in ``summary.json``, and
what the tests hold the notebook's parameters cell, its ``params/*.yaml`` files and the command's
flags against (``tests/test_flow_parameters.py``): a parameter added in one place and not the
others fails there.

The same idea has the same name in every flow: ``config`` (the router's configuration file, or
files), ``crm``, ``mailboxes``, ``max_concurrency``, ``ca_file``, ``dry_run``, ``run_id``,
``run_dir``. Bad parameters raise :class:`~emailrouter_lib.errors.ParameterError` (exit 2).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import MISSING, dataclass
from typing import Any, ClassVar, TypeVar

from emailrouter_lib.errors import ParameterError
from emailrouter_lib.secrets import refuse_literal_secrets

P = TypeVar("P", bound="FlowParameters")


@dataclass(frozen=True)
class Parameter:
    """One declared parameter, as the notebook, the command and the docs see it."""

    name: str
    type: str
    default: Any
    help: str
    secret: bool  # a secret reference (env:, file:, keyring:) or a template of them
    flags: tuple[str, ...]  # the command's flags that set it ("" when it has none)


def param(
    default: Any = MISSING,
    *,
    help: str,
    secret: bool = False,
    flags: tuple[str, ...] | str = (),
    factory: Any = MISSING,
    keep_none: bool = False,
) -> Any:
    """A declared parameter: a dataclass field with its help text, whether it holds a secret
    reference, the command-line flags that set it, and whether ``None`` is a value of its own
    (``keep_none``) instead of "the default"."""
    meta = {
        "help": help,
        "secret": secret,
        "flags": (flags,) if isinstance(flags, str) else tuple(flags),
        "keep_none": keep_none,
    }
    if factory is not MISSING:
        return dataclasses.field(default_factory=factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


# -- the parameters several flows share: one definition, so the name, help and flags agree ------


def run_id_param() -> Any:
    return param(None, help="set by the runner; a new one otherwise")


def run_dir_param(*, flags: tuple[str, ...] | str = "--run-dir", default: Any = None) -> Any:
    return param(default, help="where the artifacts go", flags=flags)


def ca_file_param() -> Any:
    return param(
        None, help="trust this CA for TLS (on-premises CAs)", flags=("--ca-file", "--cafile")
    )


def progress_param() -> Any:
    return param(None, help="progress bar: None decides by the terminal", flags="--quiet")


def config_password_param() -> Any:
    return param(
        None,
        help="secret reference template for the configuration's mailboxes, e.g. env:PW_{local}",
        secret=True,
        flags="--config-password",
    )


class FlowParameters(Mapping[str, Any]):
    """Base of every flow's parameters (a dataclass subclass): built once from a mapping,
    checked, then read as attributes, or as a read-only mapping by the flow's helpers."""

    FLOW: ClassVar[str] = "flow"
    # not part of what decides the outcome: left out of parameters_hash
    NOT_HASHED: ClassVar[frozenset[str]] = frozenset({"run_id", "run_dir", "progress"})

    @classmethod
    def declared(cls) -> list[Parameter]:
        out = []
        for f in dataclasses.fields(cls):  # type: ignore[arg-type]
            if f.default is not MISSING:
                default = f.default
            elif f.default_factory is not MISSING:
                default = f.default_factory()
            else:
                default = None
            out.append(
                Parameter(
                    f.name,
                    str(f.type),
                    default,
                    f.metadata.get("help", ""),
                    bool(f.metadata.get("secret")),
                    tuple(f.metadata.get("flags", ())),
                )
            )
        return out

    @classmethod
    def names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]

    @classmethod
    def from_mapping(cls: type[P], values: Mapping[str, Any] | P | None) -> P:
        """The parameters of *values*; :class:`ParameterError` naming what is wrong."""
        if isinstance(values, cls):
            values.check()
            return values
        values = dict(values or {})
        known = cls.names()
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ParameterError(
                f"unknown {cls.FLOW} parameter(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}"
            )
        keep_none = {
            f.name
            for f in dataclasses.fields(cls)  # type: ignore[arg-type]
            if f.metadata.get("keep_none")
        }
        data = {k: v for k, v in values.items() if v is not None or k in keep_none}
        data = cls.normalize(data)
        try:
            params = cls(**data)
        except TypeError as exc:  # a required parameter missing
            raise ParameterError(f"{cls.FLOW} parameters: {exc}") from None
        params.check()
        return params

    @classmethod
    def from_namespace(cls: type[P], namespace: Mapping[str, Any], **overrides: Any) -> P:
        """The declared parameters a notebook's ``globals()`` holds (its parameters cell, after
        papermill's injected cell), with *overrides*: a notebook's main cell is one line."""
        values = {name: namespace[name] for name in cls.names() if name in namespace}
        return cls.from_mapping({**values, **overrides})

    @classmethod
    def normalize(cls, data: dict[str, Any]) -> dict[str, Any]:
        """Accept the spellings a notebook or YAML file naturally uses (a string for a
        one-element list...): the flow's own hook, before its fields are set."""
        return data

    def check(self) -> None:
        """The flow's own checks (raise :class:`ParameterError`); this one refuses literal
        secrets in every parameter, before anything connects or is written."""
        refuse_literal_secrets(dict(self.items()), where=f"{self.FLOW} parameters")

    def fingerprint(self) -> str:
        """A hash of what decides the outcome (not where files go), for the run summary."""
        relevant = {k: v for k, v in self.items() if k not in self.NOT_HASHED}
        text = json.dumps(relevant, sort_keys=True, default=str)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    # -- read-only mapping ------------------------------------------------------------------------
    def __getitem__(self, name: str) -> Any:
        if name not in self.names():
            raise KeyError(name)
        return getattr(self, name)

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())


__all__ = [
    "FlowParameters",
    "Parameter",
    "ca_file_param",
    "config_password_param",
    "param",
    "progress_param",
    "run_dir_param",
    "run_id_param",
]
