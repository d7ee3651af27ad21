"""CRM URLs: how parameters, the CLI and notebooks name a CRM.

The embedded store follows the SQLAlchemy convention, so a URL means the same here as in the
tools admins already know::

    sqlite:///crm.db            relative to the working directory (three slashes, then the path)
    sqlite:///runs/demo/crm.db  relative as well
    sqlite:////var/lib/crm.db   absolute (three slashes, then "/var/...")
    sqlite:///C:/data/crm.db    absolute on Windows

A Dynamics 365 / Dataverse organisation is reached over its Web API (secrets by reference; all
options in :mod:`emailrouter_lib.crm.dataverse.settings`)::

    dataverse+https://crm.contoso.local/Contoso?api=v8.2&auth=ntlm&user=CONTOSO%5Csvc&password=env:PW
    dataverse+https://contoso.crm4.dynamics.com/?auth=client_credentials&tenant=ID&client_id=ID
        &client_secret=env:CRM_SECRET
"""

from __future__ import annotations

import os
from pathlib import Path

from emailrouter_lib.crm.base import CrmBackend
from emailrouter_lib.crm.sqlite import SqliteCrm, new_id, utcnow
from emailrouter_lib.crm.sqlite_url import SUPPORTED_FORMS, refuse_secret_in_url, sqlite_path
from emailrouter_lib.errors import CrmPathError


def open_crm(url: str) -> CrmBackend:
    """Open the CRM a URL names. The database must exist (see :func:`init_crm`)."""
    if isinstance(url, str) and url.strip().lower().startswith("dataverse+"):
        from emailrouter_lib.crm.dataverse import open_dataverse

        return open_dataverse(url)  # its parser runs the same secret check
    refuse_secret_in_url(url)
    path = sqlite_path(url)
    if not path.is_file():
        raise missing_database(path)
    return SqliteCrm(path)


def missing_database(path: Path) -> CrmPathError:
    """The answer to a ``sqlite:///`` URL that names no file: most often a mistyped path of a
    real CRM, so check the path first; a demo is never the suggestion."""
    return CrmPathError(
        f"no CRM database at {path}; check the path, or create one with "
        f"`emailrouter crm init sqlite:///{path.as_posix()}`"
    )


def init_crm(url: str, *, demo: bool = False, force: bool = False) -> str:
    """Create the database a URL names, seeded with the demo organisation when *demo*.

    Refuses to replace an existing non-empty file unless *force*. The database is built beside
    the target and renamed into place, so an interrupted init never leaves half a CRM. Returns
    the database's printable URL.
    """
    path = sqlite_path(url)
    if path.exists() and not path.is_file():
        raise CrmPathError(f"{path} (from {url!r}) exists and is not a file; choose another path")
    if path.is_file() and path.stat().st_size > 0 and not force:
        raise CrmPathError(
            f"{path} (from {url!r}) already holds a database; keep it, or replace it with "
            f"`emailrouter crm init {url} --force`"
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    building = path.with_name(f".{path.name}.init-{os.getpid()}")
    _remove_database(building)
    try:
        crm = SqliteCrm(building, create=True)
        try:
            if demo:
                from emailrouter_lib.crm.demo import seed_demo

                seed_demo(crm)
            else:
                _insert_default_organization(crm)
        finally:
            crm.close()
        _remove_database(path)
        os.replace(building, path)
    except BaseException:
        _remove_database(building)
        raise
    return f"sqlite:///{path.as_posix()}"


def _insert_default_organization(crm: SqliteCrm) -> None:
    with crm.transaction() as conn:
        conn.execute(
            "INSERT INTO organization (organizationid, name, createdon) VALUES (?, ?, ?)",
            (new_id(), "Organization", utcnow()),
        )


def _remove_database(path: Path) -> None:
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


__all__ = ["SUPPORTED_FORMS", "init_crm", "open_crm", "sqlite_path"]
