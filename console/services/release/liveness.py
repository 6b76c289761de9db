"""Is the process that wrote an intent still running? Only provable on the same host.

An intent records its writer as (host, boot id, pid, start time of the pid, process group).
On the same host, a different boot, or a missing pid (or one started at another time: reused)
with no process left in its group, prove the writer is gone, so its lock can be reconciled at
once. The group matters: a console killed while its `git update-ref` runs leaves that child
running for a moment, and it may still write. From another host nothing is proven and the
lock is reconciled only once it is older than any writer could still be writing.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="ascii", errors="replace").strip()
    except OSError:
        return ""


def _start_ticks(pid: int) -> str:
    """The start time of ``pid`` in clock ticks since boot (/proc/PID/stat field 22)."""
    stat = _read(f"/proc/{pid}/stat")
    fields = stat.rpartition(")")[2].split()  # the name in () may hold spaces
    return fields[19] if len(fields) > 19 else ""


@cache
def _host() -> tuple[str, str]:
    return socket.gethostname(), _read("/proc/sys/kernel/random/boot_id")


def this_process() -> dict[str, Any]:
    """This process as an intent records its writer (not cached: a fork is another one)."""
    host, boot = _host()
    pid = os.getpid()
    return {
        "host": host,
        "boot": boot,
        "pid": pid,
        "start": _start_ticks(pid),
        "group": os.getpgid(0),
    }


def writer_gone(record: Mapping[str, Any] | None) -> bool:
    """True when ``record`` (an intent's ``details.process``) names a process on this host
    that is provably no longer running; False when it may be running or can not be told."""
    if not isinstance(record, Mapping):
        return False
    me = this_process()
    if record.get("host") != me["host"] or not record.get("boot") or not me["boot"]:
        return False
    if record["boot"] != me["boot"]:
        return True  # the host rebooted since
    pid = record.get("pid")
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return False
    if pid == me["pid"] and record.get("start") == me["start"]:
        return False  # this very process
    if _alive(pid):
        started = _start_ticks(pid)
        if not (started and record.get("start") and started != record["start"]):
            return False  # still running (or can not be told apart from a reused pid)
    group = record.get("group")
    if not isinstance(group, int) or isinstance(group, bool) or group <= 0:
        return True
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return True  # nothing left of its process group
    except PermissionError:
        return False
    return False  # a child of it (a git write?) may still run


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    return True
