"""``status --json`` against the single-pass reference reader (bench/reference_status.py), at
1,000 and 2,000 models, in the same run and in turn, so the machine's speed of the moment
moves both alike: the figures are ratios.

Each pair is checked first: the reference must print the same facts as the console (else the
rows say where they differ, and nothing is timed). Wall time is the target's measure; CPU time
(the process and its git children) is printed beside it, steadier on a shared machine.
"""

from __future__ import annotations

import json
import statistics
import sys
from typing import Any

from bench import workspaces as wsmod
from bench.measure import REPO, ProcRun, Row, bench_env, console_exe, run_process
from bench.reference_status import facts

MB = 1024 * 1024
SIZES = ("wide", "wide-2000")  # names in figures.builds(): 1,000 and 2,000 models


def _label(b: wsmod.Built) -> str:
    return f"{b.spec.models:,} models x {b.spec.versions} versions"


def _differs(console: ProcRun, reference: ProcRun) -> str:
    """Why the two can not be compared ("" when they print the same facts)."""
    if console.timed_out or reference.timed_out:
        return "timed out (killed)"
    if console.returncode != 0 or reference.returncode != 0:
        return f"exit codes {console.returncode} and {reference.returncode}"
    mine, theirs = facts(json.loads(console.stdout)), facts(json.loads(reference.stdout))
    if mine == theirs:
        return ""
    for i, (a, b) in enumerate(zip(mine["models"], theirs["models"], strict=False)):
        if a != b:
            keys = [k for k in a if a.get(k) != b.get(k)]
            return f"facts differ: model {i} ({a.get('name')}): {', '.join(keys)}"
    return "facts differ"


def status_rows(opts: Any, built: dict[str, wsmod.Built]) -> list[Row]:
    exe, env = console_exe(), bench_env()
    runs = max(1, opts.slow_runs)
    walls: dict[str, list[float]] = {}
    rows: list[Row] = []
    for name in SIZES:
        b = built[name]
        label = _label(b)
        console = Row("status --json", workspace=label)
        reference = Row("reference reader, same facts", workspace=label)
        ratio = Row("status --json / reference", workspace=label, unit="x", target=1.2)
        cpu = Row("status --json / reference, CPU", workspace=label, unit="x")
        rss = Row("status --json peak RSS", workspace=label, unit="MB")
        if b.spec.models >= 2000:
            rss.target = 120
        group = [console, reference, ratio, cpu, rss]
        rows += group
        argv = [exe, "-w", str(b.path), "status", "--json"]
        ref_argv = [sys.executable, str(REPO / "bench" / "reference_status.py"), str(b.path)]
        timeout = max(opts.status_timeout, 120.0)
        first = run_process(argv, env=env, capture=True, timeout=timeout)  # warms the caches
        ref = run_process(ref_argv, env=env, capture=True, timeout=timeout)
        why = _differs(first, ref)
        if why:
            for r in group:
                r.na = why[:120]
            continue
        for _ in range(runs):
            c = run_process(argv, env=env, timeout=timeout)
            r = run_process(ref_argv, env=env, timeout=timeout)
            console.values.append(c.seconds * 1e3)
            reference.values.append(r.seconds * 1e3)
            ratio.values.append(c.seconds / r.seconds)
            cpu.values.append(c.cpu / r.cpu)
            rss.values.append(c.max_rss / MB)
        walls[name] = console.values
        console.note = "facts checked against the reference"
        reference.note = "one for-each-ref, one cat-file --batch, one pass over .ci-runs"
        ratio.note = "same run, in turn"
    if len(walls) == len(SIZES):
        small, large = (statistics.median(walls[n]) for n in SIZES)
        rows.append(
            Row(
                "status --json: 2,000 / 1,000 models",
                unit="x",
                values=[large / small],
                target=2.1,
                note="medians of the runs above",
            )
        )
    return rows
