"""Whether the writer of an intent is provably gone (the fast path of reconciliation)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from console.services.release.liveness import this_process, writer_gone


def _record_of(proc: subprocess.Popen[bytes]) -> dict[str, object]:
    me = this_process()
    stat = Path(f"/proc/{proc.pid}/stat").read_text().rpartition(")")[2].split()
    return {**me, "pid": proc.pid, "start": stat[19], "group": proc.pid}


def test_this_process_is_not_gone() -> None:
    assert not writer_gone(this_process())


def test_a_dead_process_whose_group_is_empty_is_gone() -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"], start_new_session=True)
    record = _record_of(proc)
    proc.wait()
    assert writer_gone(record)


def test_a_dead_leader_with_a_child_still_running_is_not_gone() -> None:
    # The leader starts a child in its group (as the console starts `git update-ref`) and
    # dies; the child (cat on the leader's stdin) runs until the test closes that pipe.
    code = "import subprocess, sys; subprocess.Popen(['cat'], stdout=subprocess.DEVNULL)"
    proc = subprocess.Popen([sys.executable, "-c", code], start_new_session=True,
                            stdin=subprocess.PIPE)  # fmt: skip
    record = _record_of(proc)
    proc.wait()
    assert not writer_gone(record)
    assert proc.stdin is not None
    proc.stdin.close()
    deadline = time.monotonic() + 30
    while not writer_gone(record) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert writer_gone(record)  # once the child is done too


def test_another_host_proves_nothing_and_another_boot_proves_it() -> None:
    me = this_process()
    assert not writer_gone({**me, "host": "elsewhere", "pid": 999_999})
    assert writer_gone({**me, "boot": "another-boot", "pid": me["pid"]})
    assert not writer_gone(None) and not writer_gone({"host": me["host"]})
