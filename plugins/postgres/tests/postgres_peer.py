"""A throwaway PostgreSQL cluster from Debian's packages for the postgres plugin's tests.

``initdb`` in a fresh temp dir, password (SCRAM) authentication over TCP on a free loopback
port, the unix socket in the same temp dir. PostgreSQL refuses to run as root, so under root
the cluster belongs to ``nobody`` (via ``runuser``). Skips only when the binaries are missing.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cd4ml_console_postgres import PLUGIN, PostgresAuditConfig
from cd4ml_console_postgres.store import PostgresAuditStore

from console.plugins import BackendContext

SUPERUSER = "cd4ml"
PASSWORD_ENV = "CD4ML_TEST_PG_PASSWORD"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def find_binaries() -> Path | None:
    """The folder holding initdb and pg_ctl: on PATH, else Debian's versioned folder."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(os.path.realpath(found)).parent
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(folder, "initdb").exists() and Path(folder, "pg_ctl").exists():
            return Path(folder)
    return None


@dataclass
class Cluster:
    """A running cluster: connect as the superuser with ``password`` on 127.0.0.1:``port``."""

    port: int
    password: str
    folder: Path

    @property
    def dsn(self) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/postgres"

    def connect(self) -> psycopg.Connection[Any]:
        """A direct superuser connection, for tampering with the log behind the store's back."""
        return psycopg.connect(self.dsn, password=self.password, autocommit=True)


def _as_owner(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "nobody", "--", *argv] if os.geteuid() == 0 else argv


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[Cluster]:
    binaries = find_binaries()
    if binaries is None:
        pytest.skip(
            "PostgreSQL server binaries (initdb, pg_ctl) are not installed "
            "(apt-get install -y --no-install-recommends postgresql)"
        )
    folder = Path(tempfile.mkdtemp(prefix="cd4ml-pg-"))  # not under pytest's root-only tmp
    password = uuid.uuid4().hex
    pwfile = folder / "pw"
    pwfile.write_text(password + "\n")
    if os.geteuid() == 0:
        shutil.chown(folder, "nobody")
        shutil.chown(pwfile, "nobody")
    data, log = folder / "data", folder / "postgres.log"
    port = free_port()
    subprocess.run(
        _as_owner(
            [
                str(binaries / "initdb"),
                "-D", str(data),
                "-U", SUPERUSER,
                "--auth-local=trust",
                "--auth-host=scram-sha-256",
                f"--pwfile={pwfile}",
                "-E", "UTF8",
                "--no-sync",
                "--no-instructions",
            ]
        ),
        check=True,
        capture_output=True,
    )  # fmt: skip
    pwfile.unlink()
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    pg_ctl = str(binaries / "pg_ctl")
    started = subprocess.run(
        _as_owner(
            [pg_ctl, "-D", str(data), "-l", str(log), "-w", "-t", "30", "-o", options, "start"]
        ),
        capture_output=True,
        text=True,
    )
    if started.returncode != 0:
        text = log.read_text() if log.exists() else started.stderr
        shutil.rmtree(folder, ignore_errors=True)
        raise RuntimeError(f"postgres did not start: {text[-2000:]}")
    try:
        yield Cluster(port, password, folder)
    finally:
        subprocess.run(
            _as_owner([pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"]),
            capture_output=True,
        )
        shutil.rmtree(folder, ignore_errors=True)


def make_store(cluster: Cluster, schema: str, tmp: Path, **options: Any) -> PostgresAuditStore:
    """A store on ``schema`` whose password comes from the environment variable."""
    options.setdefault("dsn", cluster.dsn)
    options.setdefault("token_env", PASSWORD_ENV)
    options.setdefault("use_keyring", False)
    options.setdefault("credentials_file", tmp / "no-credentials.toml")
    ctx = BackendContext(workspace=tmp, state_dir=tmp, config=None, timeout=5.0)
    store: PostgresAuditStore = PLUGIN.factory(PostgresAuditConfig(schema=schema, **options), ctx)
    return store


def new_schema() -> str:
    return f"t_{uuid.uuid4().hex[:16]}"
