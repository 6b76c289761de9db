"""``status --json`` against the single-pass reference reader (bench/reference_status.py), at
1,000 and 2,000 models, in the same run and in turn, so the machine's speed of the moment
moves both alike: the figures are ratios.

Each pair is checked first: the reference must print the same facts as the console (else the
rows say where they differ, and nothing is timed). Wall time is the target's measure; CPU time
(the process and its git children) is printed beside it, steadier on a shared machine.
"""

from __future__ import annotations

import json
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
    timeout = max(opts.status_timeout, 120.0)
    groups: dict[str, list[Row]] = {}
    argvs: dict[str, tuple[list[str], list[str]]] = {}
    for name in SIZES:
        b = built[name]
        label = _label(b)
        groups[name] = [
            Row("status --json", workspace=label, note="facts checked against the reference"),
            Row(
                "reference reader, same facts",
                workspace=label,
                note="one for-each-ref, one cat-file --batch, one pass over .ci-runs",
            ),
            Row("status --json / reference", workspace=label, unit="x", target=1.2),
            Row("status --json / reference, CPU", workspace=label, unit="x"),
            Row(
                "status --json peak RSS",
                workspace=label,
                unit="MB",
                target=120 if b.spec.models >= 2000 else None,
            ),
        ]
        argv = [exe, "-w", str(b.path), "status", "--json"]
        ref_argv = [sys.executable, str(REPO / "bench" / "reference_status.py"), str(b.path)]
        first = run_process(argv, env=env, capture=True, timeout=timeout)  # warms the caches
        ref = run_process(ref_argv, env=env, capture=True, timeout=timeout)
        why = _differs(first, ref)
        if why:
            for r in groups[name]:
                r.na = why[:120]
        else:
            argvs[name] = (argv, ref_argv)
    scaling = Row(
        "status --json: 2,000 / 1,000 models", unit="x", target=2.1, note="per round, in turn"
    )
    scaling_cpu = Row("status --json: 2,000 / 1,000 models, CPU", unit="x")
    # Every round times both sizes, console and reference in turn: a change in the machine's
    # load between rounds moves all four alike, and the ratios stay honest.
    for _ in range(runs):
        took: dict[str, ProcRun] = {}
        for name, (argv, ref_argv) in argvs.items():
            console, reference, ratio, cpu, rss = groups[name]
            c = run_process(argv, env=env, timeout=timeout)
            r = run_process(ref_argv, env=env, timeout=timeout)
            console.values.append(c.seconds * 1e3)
            reference.values.append(r.seconds * 1e3)
            ratio.values.append(c.seconds / r.seconds)
            cpu.values.append(c.cpu / r.cpu)
            rss.values.append(c.max_rss / MB)
            took[name] = c
        if len(took) == len(SIZES):
            small, large = (took[n] for n in SIZES)
            scaling.values.append(large.seconds / small.seconds)
            scaling_cpu.values.append(large.cpu / small.cpu)
    rows = [r for name in SIZES for r in groups[name]]
    return [*rows, scaling, scaling_cpu]
