"""Timing plumbing: run a process and read its wall time and peak RSS, percentiles, the table."""

from __future__ import annotations

import math
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOG_DIR = REPO / "bench" / ".work" / "logs"
CACHE_DIR = REPO / "bench" / ".work" / "cache"  # XDG_CACHE_HOME of measured processes


def console_exe() -> str:
    """The ``cd4ml-console`` script of the running venv (what `make` installs)."""
    beside = Path(sys.executable).parent / "cd4ml-console"
    if beside.exists():
        return str(beside)
    found = shutil.which("cd4ml-console")
    if found is None:
        raise SystemExit("cd4ml-console is not installed in this venv: run `make bench`")
    return found


def bench_env(**extra: str) -> dict[str, str]:
    """The environment of every measured process: logs to bench/.work, no colour surprises."""
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TEXTUAL", "CD4ML_"))}
    env.update(CD4ML_LOG_FILE=str(LOG_DIR / "console.log"), PYTHONDONTWRITEBYTECODE="")
    env.update(XDG_CACHE_HOME=str(CACHE_DIR))  # the start cache (console.tui.startcache)
    env.update(extra)
    return env


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return math.nan
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def vm_hwm(pid: int) -> int:
    """Peak resident set size (VmHWM) of a live process, in bytes."""
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise ValueError(f"no VmHWM for pid {pid}")


@dataclass
class ProcRun:
    """One finished process: wall seconds, peak RSS in bytes, exit code, captured stdout, and
    CPU seconds (user + system, its waited-for children such as git included)."""

    seconds: float
    max_rss: int
    returncode: int
    stdout: bytes = b""
    timed_out: bool = False
    cpu: float = 0.0


def run_process(
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    capture: bool = False,
    timeout: float = 300.0,
) -> ProcRun:
    """Run ``argv`` to completion; time it from spawn to reaping, and read its own peak RSS
    from ``wait4`` (ru_maxrss of that child only, not of every child we ever had)."""
    out_file = tempfile.TemporaryFile() if capture else None  # noqa: SIM115 - closed below
    started = time.perf_counter()
    proc = subprocess.Popen(
        list(argv),
        stdin=subprocess.DEVNULL,
        stdout=out_file if out_file is not None else subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env or bench_env(),
        cwd=cwd,
    )
    killer = threading.Timer(timeout, proc.kill)
    killer.start()
    try:
        _, status, usage = os.wait4(proc.pid, 0)  # blocking: no polling to steal a core
    finally:
        killer.cancel()
    timed_out = os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL
    seconds = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    stdout = b""
    if out_file is not None:
        out_file.seek(0)
        stdout = out_file.read()
        out_file.close()
    cpu = usage.ru_utime + usage.ru_stime
    return ProcRun(seconds, usage.ru_maxrss * 1024, proc.returncode, stdout, timed_out, cpu)


@dataclass
class Row:
    """One figure: its samples, unit, target and a note. ``na`` says why there is no number."""

    figure: str
    workspace: str = ""
    unit: str = "ms"
    values: list[float] = field(default_factory=list)
    target: float | None = None
    note: str = ""
    na: str = ""
    higher_is_better: bool = False

    @property
    def p50(self) -> float:
        return percentile(self.values, 0.5)

    @property
    def p90(self) -> float:
        return percentile(self.values, 0.9)

    def meets(self) -> str:
        if self.na or self.target is None or not self.values:
            return ""
        ok = self.p50 >= self.target if self.higher_is_better else self.p50 <= self.target
        return "yes" if ok else "NO"


def fmt_value(value: float, unit: str) -> str:
    if math.isnan(value):
        return "-"
    if unit == "ms":
        return f"{value:.0f} ms" if value >= 100 else f"{value:.1f} ms"
    if unit == "MB":
        return f"{value:.1f} MB"
    if unit == "B":
        return f"{value:,.0f} B"
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "s":
        return f"{value:.1f} s"
    if unit == "models":
        return f"{value:.0f}"
    return f"{value:g} {unit}"


def render_table(rows: Sequence[Row]) -> str:
    """A Markdown table (readable in a terminal, pasteable into docs/performance.md)."""
    header = ["figure", "workspace", "n", "p50", "p90", "target", "meets", "note"]
    lines = []
    for r in rows:
        if r.na:
            cells = [r.figure, r.workspace, "0", r.na, "", _target(r), "", r.note]
        else:
            cells = [
                r.figure,
                r.workspace,
                str(len(r.values)),
                fmt_value(r.p50, r.unit),
                fmt_value(r.p90, r.unit),
                _target(r),
                r.meets(),
                r.note,
            ]
        lines.append(cells)
    widths = [max(len(h), *(len(c[i]) for c in lines)) for i, h in enumerate(header)]
    out = ["| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)) + " |"]
    out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for cells in lines:
        out.append("| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |")
    return "\n".join(out)


def _target(r: Row) -> str:
    if r.target is None:
        return ""
    sign = "≥" if r.higher_is_better else "≤"
    return f"{sign} {fmt_value(r.target, r.unit)}"
