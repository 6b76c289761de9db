"""``python -m bench``: build (or reuse) the workspaces, measure, print one table.

python -m bench                 # every figure (a few minutes on 2 cores)
python -m bench --quick         # smoke run: 2 runs each, 3 key presses
python -m bench --runs 15       # more runs per figure
python -m bench --only cli,tmux # some groups: cli, status, tmux, keys, rss, latency, mlflow
python -m bench --profile status-wide   # where the time goes (pyinstrument or cProfile)
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

from bench import figures
from bench.measure import Row, render_table

GROUPS = ("cli", "status", "tmux", "keys", "rss", "latency", "mlflow")


def machine() -> str:
    """One line about where the figures were measured."""
    mem = ""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            kib = int(f.readline().split()[1])
        mem = f", {kib / 1024 / 1024:.1f} GiB RAM"
    except (OSError, ValueError, IndexError):
        pass
    import textual

    return (
        f"{os.cpu_count()} CPUs{mem}, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}, Textual {textual.__version__}"
    )


def load() -> str:
    one, five, _ = os.getloadavg()
    return f"load average {one:.2f} (1 min), {five:.2f} (5 min)"


def wait_for_quiet(max_wait: float) -> None:
    """Other work on the machine skews every figure: wait (a while) for the load to drop."""
    cpus = os.cpu_count() or 1
    end = time.monotonic() + max_wait
    while os.getloadavg()[0] > 0.75 * cpus and time.monotonic() < end:
        print(f"waiting for a quieter machine ({load()})", file=sys.stderr)
        time.sleep(10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="runs of each quick figure (7)")
    parser.add_argument("--slow-runs", type=int, default=3, help="runs of each slow figure (3)")
    parser.add_argument("--presses", type=int, default=20, help="key presses per key (20)")
    parser.add_argument("--quick", action="store_true", help="smoke run: everything small")
    parser.add_argument("--only", default=",".join(GROUPS), help=f"groups: {','.join(GROUPS)}")
    parser.add_argument(
        "--status-timeout", type=float, default=60.0, help="kill a status run after (60 s)"
    )
    parser.add_argument(
        "--wait-quiet", type=float, default=0.0, help="wait up to N s for the load to drop"
    )
    parser.add_argument("--profile", choices=sorted(PROFILES), help="profile one thing instead")
    args = parser.parse_args(argv)
    if args.profile:
        from bench.profile import profile

        return profile(args.profile)
    opts = figures.Options(
        runs=args.runs, slow_runs=args.slow_runs, presses=args.presses,
        status_timeout=args.status_timeout,
    )  # fmt: skip
    if args.quick:
        opts = figures.Options(
            runs=2, slow_runs=1, presses=3, status_timeout=min(args.status_timeout, 30),
            quick=True,
        )  # fmt: skip
    groups = [g.strip() for g in args.only.split(",") if g.strip()]
    unknown = sorted(set(groups) - set(GROUPS))
    if unknown:
        parser.error(f"unknown group(s) {', '.join(unknown)}; use {', '.join(GROUPS)}")
    built = figures.builds(opts)
    if args.wait_quiet:
        wait_for_quiet(args.wait_quiet)
    print(f"# cd4ml-console benchmark — {machine()}")
    print(f"# started {time.strftime('%Y-%m-%d %H:%M:%S')}, {load()}")
    started = time.perf_counter()
    rows: list[Row] = []
    steps = {
        "cli": figures.cli_rows,
        "status": figures.status_rows,
        "tmux": figures.tmux_rows,
        "keys": figures.key_rows,
        "rss": figures.rss_rows,
        "latency": figures.latency_rows,
        "mlflow": figures.mlflow_rows,
    }
    for group in GROUPS:
        if group not in groups:
            continue
        t = time.perf_counter()
        try:
            rows += steps[group](opts, built)
        except Exception as exc:  # one broken group must not hide the others' figures
            rows.append(Row(f"[{group}] failed", na=f"{type(exc).__name__}: {exc}"[:120]))
        print(f"{group}: {time.perf_counter() - t:.0f}s", file=sys.stderr)
    print()
    print(render_table(rows))
    print()
    print(f"# finished in {time.perf_counter() - started:.0f}s, {load()}")
    return 0


PROFILES = {
    "status-small", "status-wide", "status-wide-noidx", "status-deep", "ci-index-deep", "tui-deep",
    "tui-start-small", "tui-start-wide",
}  # fmt: skip

if __name__ == "__main__":
    sys.exit(main())
