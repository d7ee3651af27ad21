"""Publish: write the edited configuration for the router service, after showing the diff.

Plan, then apply. :func:`plan_publish` brings the kept XML tree in line with the model (only
edited values change) and compares the resulting bytes with the file now at the target; the
plan shows a unified diff with secret values masked. :func:`apply_publish` writes exactly the
bytes the plan showed, atomically, after a timestamped backup of the old file, and refuses if
the file changed since the plan was made. A plan with no change (or one that differs only in
serialisation, such as ``<a></a>`` for ``<a/>``) writes nothing, so applying twice changes
nothing.
"""

from __future__ import annotations

import difflib
import html
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from lxml import etree

from emailrouter_lib.config import vocabulary as vocab
from emailrouter_lib.config.model import RouterConfig
from emailrouter_lib.config.writer import _new_file, apply_edits, backup_file
from emailrouter_lib.config.xmlfile import refuse_unsafe_xml
from emailrouter_lib.errors import ConfigError
from emailrouter_lib.files import write_atomically

_SECRET_VALUE = re.compile(
    r"(<(?P<name>[\w.:-]*(?:" + "|".join(vocab.SECRET_NAME_HINTS) + r")[\w.:-]*)\b[^>]*>)"
    r"[^<]*(</(?P=name)\s*>)",
    re.IGNORECASE,
)


@dataclass
class PublishPlan:
    """What publishing would write to ``target``: the bytes and a readable diff."""

    target: Path
    new: bytes = field(repr=False)
    current: bytes | None = field(default=None, repr=False)
    diff: str = ""
    codec: str = "utf-8"

    @property
    def changed(self) -> bool:
        return self.current != self.new

    @property
    def added(self) -> int:
        return sum(1 for line in self.diff.splitlines() if _is_change(line, "+"))

    @property
    def removed(self) -> int:
        return sum(1 for line in self.diff.splitlines() if _is_change(line, "-"))

    def summary(self) -> str:
        if not self.changed:
            return f"{self.target}: already up to date, nothing to publish"
        if self.current is None:
            return f"{self.target}: new file, {self.added} lines"
        return f"{self.target}: {self.added} line(s) added, {self.removed} removed"

    def __str__(self) -> str:
        return self.summary() + ("\n" + self.diff if self.diff else "")

    def _repr_html_(self) -> str:
        lines = []
        for line in self.diff.splitlines():
            colour = ""
            if _is_change(line, "+"):
                colour = "color:#116611;background:#eaffea"
            elif _is_change(line, "-"):
                colour = "color:#991111;background:#ffecec"
            lines.append(f'<span style="{colour}">{html.escape(line)}</span>')
        body = "\n".join(lines)
        return f"<p><b>{html.escape(self.summary())}</b></p>" + (
            f"<pre style='font-size:90%'>{body}</pre>" if body else ""
        )


@dataclass(frozen=True)
class PublishResult:
    """What :func:`apply_publish` did."""

    target: Path
    written: bool
    backup: Path | None = None

    def __str__(self) -> str:
        if not self.written:
            return f"{self.target}: unchanged, nothing written"
        kept = f"; the old file is kept as {self.backup.name}" if self.backup else ""
        return f"published {self.target}{kept}"


def plan_publish(config: RouterConfig, target: str | os.PathLike[str] | None = None) -> PublishPlan:
    """The plan for writing *config* to *target* (default: the file it was read from)."""
    if target is None:
        if config.path is None:
            raise ConfigError("this configuration was not read from a file; name the target")
        target = config.path
    target = Path(target)
    if config.xml is None:
        config.xml = _new_file(target)
    apply_edits(config)
    new = config.xml.to_bytes()
    current = _read(target)
    if current is not None:
        # The file to be replaced is parsed for the diff: the same safety as any read.
        refuse_unsafe_xml(current, str(target))
    if current is not None and current != new and _canonical(current) == _canonical(new):
        new = current  # only serialisation differs (<a></a> vs <a/>): nothing to publish
    codec = config.xml.codec
    before = _text(current, codec)
    after = _text(new, codec)
    diff = "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            fromfile=f"{target.name} (now)",
            tofile=f"{target.name} (published)",
            n=2,
        )
    )
    return PublishPlan(target, new, current, mask_secrets(diff), codec)


def apply_publish(plan: PublishPlan, *, backup: bool = True) -> PublishResult:
    """Write what the plan showed, backing the old file up first; nothing when unchanged."""
    now = _read(plan.target)
    if now != plan.current:
        raise ConfigError(
            "the file changed after the publish plan was made (the Configuration Manager or "
            "another admin wrote it); make a new plan and read its diff before publishing",
            file=str(plan.target),
        )
    if not plan.changed:
        return PublishResult(plan.target, written=False)
    if not plan.target.parent.is_dir():
        raise ConfigError(
            "the folder does not exist; publish into the router's Service folder",
            file=str(plan.target),
        )
    saved = backup_file(plan.target) if backup and now is not None else None
    write_atomically(plan.target, plan.new)
    return PublishResult(plan.target, written=True, backup=saved)


def mask_secrets(text: str) -> str:
    """*text* with the value of every secret-looking element replaced by ``***``."""
    return _SECRET_VALUE.sub(lambda m: f"{m.group(1)}***{m.group(3)}", text)


def _canonical(data: bytes) -> bytes | None:
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    try:
        return etree.tostring(etree.fromstring(data, parser).getroottree(), method="c14n")
    except etree.LxmlError:  # not well-formed, or not canonicalisable (C14NError)
        return None


def _read(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise ConfigError(f"cannot read the file ({exc.strerror})", file=str(path)) from None


def _text(data: bytes | None, codec: str) -> str:
    if data is None:
        return ""
    for bom in (b"\xef\xbb\xbf", b"\xff\xfe", b"\xfe\xff"):
        if data.startswith(bom):
            data = data[len(bom) :]
            break
    return data.decode(codec, errors="replace").replace("\r\n", "\n")


def _is_change(line: str, sign: str) -> bool:
    return line.startswith(sign) and not line.startswith(sign * 3)


__all__ = ["PublishPlan", "PublishResult", "apply_publish", "mask_secrets", "plan_publish"]
