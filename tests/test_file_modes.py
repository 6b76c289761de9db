"""The console's own files on a shared bastion: the log and the caches are this user's only
(0600 files in 0700 folders), whatever the umask; the shared workspace's files are not."""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from console import cachefiles, logs


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def umask_022() -> Iterator[None]:
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.fixture
def fresh_logging(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setattr(logs, "_configured", False)
    logger = logging.getLogger("console")
    before = list(logger.handlers)
    yield
    for handler in logger.handlers[len(before) :]:
        handler.close()
        logger.removeHandler(handler)


def test_the_log_file_is_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, umask_022: None, fresh_logging: None
) -> None:
    monkeypatch.delenv("CD4ML_LOG_FILE", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    path = logs.setup_logging()
    logging.getLogger("console.test").warning("a line")
    assert path == tmp_path / "state" / "cd4ml-console" / "log" / "console.log"
    assert path.read_text().endswith("a line\n")
    assert mode(path) == 0o600
    assert mode(path.parent) == mode(path.parent.parent) == 0o700
    assert mode(tmp_path / "state") == 0o755  # not the console's to change


def test_an_existing_open_log_is_made_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, umask_022: None, fresh_logging: None
) -> None:
    old = tmp_path / "console.log"
    old.write_text("from before\n")
    old.chmod(0o644)
    monkeypatch.setenv("CD4ML_LOG_FILE", str(old))
    logs.setup_logging()
    assert mode(old) == 0o600 and old.read_text() == "from before\n"


def test_cache_files_are_private(_own_cache_folder: Path, umask_022: None) -> None:
    root = cachefiles.cache_root()
    root.mkdir(parents=True)
    root.chmod(0o755)  # made by an older console
    path = cachefiles.cache_file("frames", "/srv/ws", ".ansi")
    assert cachefiles.write_atomic(path, b"frame")
    assert path.read_bytes() == b"frame" and mode(path) == 0o600
    assert mode(path.parent) == mode(root) == 0o700
    assert mode(_own_cache_folder) == 0o755


def test_a_log_set_to_dev_null_leaves_it_alone(
    monkeypatch: pytest.MonkeyPatch, fresh_logging: None
) -> None:
    before = os.stat(os.devnull).st_mode
    monkeypatch.setenv("CD4ML_LOG_FILE", os.devnull)
    try:
        logs.setup_logging()
        assert os.stat(os.devnull).st_mode == before
    finally:
        os.chmod(os.devnull, stat.S_IMODE(before))
