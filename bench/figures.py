"""Each figure of the benchmark: one function per group, returning table rows."""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from bench import workspaces as wsmod
from bench.measure import CACHE_DIR, REPO, Row, bench_env, console_exe, run_process, vm_hwm

MB = 1024 * 1024
TUI_NA = "n/a (TUI not available)"


@dataclass
class Options:
    """How many runs of each kind; ``quick`` shrinks everything to a smoke run."""

    runs: int = 7
    slow_runs: int = 3  # figures that take seconds per run (10k versions, 1,000 models)
    presses: int = 20
    status_timeout: float = 60.0
    quick: bool = False


def tui_available() -> str:
    """ "" when ``console.tui.app.run_tui`` imports, else why not."""
    try:
        from console.tui.app import run_tui  # noqa: F401
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    return ""


def _repeat(n: int, fn: Callable[[], float]) -> list[float]:
    return [fn() for _ in range(n)]


# -- CLI -----------------------------------------------------------------------------------


def cli_rows(opts: Options, built: dict[str, wsmod.Built]) -> list[Row]:
    """``--help`` and ``status --json`` wall time and peak RSS."""
    exe = console_exe()
    env = bench_env()
    rows: list[Row] = []
    base = Row("python -c pass (interpreter start)", note="baseline, not a target")
    run_process([sys.executable, "-c", "pass"], env=env)
    base.values = [run_process([sys.executable, "-c", "pass"], env=env).seconds * 1e3
                   for _ in range(opts.runs)]  # fmt: skip
    rows.append(base)
    help_row = Row("cd4ml-console --help", target=80)
    run_process([exe, "--help"], env=env)  # warm the page cache
    help_row.values = [
        run_process([exe, "--help"], env=env).seconds * 1e3 for _ in range(opts.runs)
    ]
    rows.append(help_row)
    for name, b in built.items():
        if name == "wide-2000":  # the status group compares it with the reference reader
            continue
        # 1,000 models take tens of seconds per run: one run (it counts), not a series
        n = opts.runs if b.spec.name == "small" else opts.slow_runs
        n = 1 if b.spec.models >= 1000 else n
        wall = Row("status --json", workspace=_label(b), unit="ms")
        rss = Row("status --json peak RSS", workspace=_label(b), unit="MB")
        argv = [exe, "-w", str(b.path), "status", "--json"]
        first = run_process(argv, env=env, capture=True, timeout=opts.status_timeout)
        notes = [_status_note(first.stdout, first.returncode)]
        if first.timed_out:
            wall.na = f"> {opts.status_timeout:.0f} s (killed)"
            rss.na = "-"
            wall.note = rss.note = "one run; " + notes[0]
            rows += [wall, rss]
            continue
        runs = [first] if n <= 1 else []  # the first run warms caches; it counts only if alone
        for _ in range(n - len(runs)):
            runs.append(run_process(argv, env=env, timeout=opts.status_timeout))
        wall.values = [r.seconds * 1e3 for r in runs]
        rss.values = [r.max_rss / MB for r in runs]
        wall.note = rss.note = "; ".join(x for x in notes if x)
        if b.spec.models >= 1000:  # the 80 MB target is the TUI's (rss group); this is the CLI
            rss.note = "; ".join(x for x in (rss.note, "CLI, no target") if x)
        rows += [wall, rss]
    return rows


def _label(b: wsmod.Built) -> str:
    s = b.spec
    idx = "" if s.artifacts_index else ", no artifacts.yaml"
    if s.models == 1:
        return f"1 model x {s.versions:,} versions{idx}"
    return f"{s.models:,} models x {s.versions} versions{idx}"


def _status_note(stdout: bytes, code: int) -> str:
    try:
        doc = json.loads(stdout)
    except ValueError:
        return f"exit {code}, no JSON"
    errors = len(doc.get("errors", []))
    return f"exit {code}, {len(doc.get('models', []))} models" + (
        f", {errors} errors" if errors else ""
    )


# -- TUI in tmux -----------------------------------------------------------------------------


def _series(row: Row, n: int, fn: Callable[[], float]) -> None:
    """Fill ``row`` with ``n`` samples of ``fn()`` seconds; a timeout becomes its ``na``."""
    from bench.tui_frames import TmuxError

    try:
        row.values = [fn() * 1e3 for _ in range(n)]
    except (TmuxError, TimeoutError) as exc:
        row.values = []
        row.na = "timed out"
        row.note = str(exc).splitlines()[0][:80]


PAIR_BUDGET_MS = 350 - 277  # the first-frame target less the owner's empty app
NO_FRAME = "CD4ML_NO_FRAME_CACHE"  # the console draws its first frame with Textual only
KEPT = "kept frame replayed (title bar)"  # the last start's frame, written before Textual


def _pair(tmux: Any, empty: list[str], tui: list[str]) -> float:
    """Seconds the console's first frame takes beyond an empty Textual app's, launched one
    right after the other: the machine's speed of the moment (which moves both by tens of
    percent between runs) cancels out."""
    from bench.empty_app import MARKER
    from bench.tui_frames import contains, time_launch

    base = time_launch(tmux, empty, contains(MARKER), cwd=REPO)
    return time_launch(tmux, tui, contains("cd4ml-console")) - base


def _warm(tmux: Any, tui: list[str], done: Callable[[str], bool]) -> None:
    """Two full starts: the first saves the model list, the second the first frame showing it
    (a frame is kept only when its names are the registry's)."""
    from bench.tui_frames import time_launch

    for _ in range(2):
        time_launch(tmux, tui, done, timeout=60, then=lambda _s: time.sleep(0.5))


def tmux_rows(opts: Options, built: dict[str, wsmod.Built]) -> list[Row]:
    """First frames (empty Textual app, the console) and the 10k-version screen, under tmux."""
    from bench.empty_app import MARKER
    from bench.tui_frames import Tmux, contains, row_filled, row_shown, settle, time_launch

    exe = console_exe()
    small, wide, deep = built["small"], built["wide"], built["deep"]
    rows: list[Row] = [
        Row("empty Textual app: first frame", note="baseline (product owner: 277 ms)"),
        Row(
            KEPT,
            workspace=_label(small),
            note="a replay of the last start's frame before Textual loads: not the app's",
        ),
        Row(
            "TUI first frame minus empty app's, in pairs",
            workspace=_label(small),
            target=PAIR_BUDGET_MS,
            note="drawn by Textual (no frame kept); 350 - 277 ms: target less owner's empty app",
        ),
        Row("TUI model names, last session's list", workspace=_label(small), target=350),
        Row("TUI model names, first start (no cache)", workspace=_label(small)),
        Row("TUI time to data: first overview row filled", workspace=_label(small)),
        Row(KEPT, workspace=_label(wide)),
        Row("TUI model names, last session's list", workspace=_label(wide), target=350),
        Row("TUI model names, first start (no cache)", workspace=_label(wide)),
        Row("TUI time to data: first overview row filled", workspace=_label(wide)),
        Row(KEPT, workspace=_label(deep)),
        Row("Enter on overview -> versions rows", workspace=_label(deep), target=400),
        Row(
            "`open MODEL` from launch -> versions rows",
            workspace=_label(deep),
            note="a cold process: config, workspace and every tag first",
        ),
        Row("model screen rows filled from launch", workspace=_label(deep)),
        Row(
            "TUI first frame, drawn by Textual (title bar)",
            workspace=_label(small),
            target=350,
            note=f"{NO_FRAME}=1: no kept frame; the headline first-frame figure",
        ),
    ]
    why = tui_available()
    if why:
        for r in rows[1:]:
            r.na = TUI_NA
    tmux = Tmux(bench_env())
    try:
        n, slow = opts.runs, opts.slow_runs
        empty = [sys.executable, "-m", "bench.empty_app"]
        _series(rows[0], n, lambda: time_launch(tmux, empty, contains(MARKER), cwd=REPO))
        if why:
            return rows
        for i, b in ((1, small), (6, wide)):
            tui = [exe, "-w", str(b.path)]
            first = b.spec.model_name(0)
            filled = row_filled(first, "…", "loading")
            # two full starts first: the app saves its model list, then the first frame
            _warm(tmux, tui, filled)
            _series(rows[i], n, partial(time_launch, tmux, tui, contains("cd4ml-console")))
            names = i + 2 if b is small else i + 1  # the small workspace has the pairs row
            _series(rows[names], n, partial(time_launch, tmux, tui, contains(first)))

            def cold(tui: list[str] = tui, first: str = first) -> float:
                shutil.rmtree(CACHE_DIR, ignore_errors=True)
                return time_launch(tmux, tui, contains(first))

            _series(rows[names + 1], n, cold)
            runs = n if b is small else slow
            _series(rows[names + 2], runs, partial(time_launch, tmux, tui, filled, timeout=60))
        textual_only = ["env", f"{NO_FRAME}=1", exe, "-w", str(small.path)]
        _series(rows[2], n, partial(_pair, tmux, empty, textual_only))
        _series(rows[14], n, partial(time_launch, tmux, textual_only, contains("cd4ml-console")))
        model = deep.spec.model_name(0)
        marker = wsmod.version_name(deep.spec.versions - 2)  # second row; in no stage
        deep_tui = [exe, "-w", str(deep.path)]
        _warm(tmux, deep_tui, contains(model))
        _series(rows[10], n, partial(time_launch, tmux, deep_tui, contains("cd4ml-console")))
        opener = [*deep_tui, "open", model]
        _series(rows[12], slow, lambda: time_launch(tmux, opener, row_shown(marker), cwd=REPO))
        _series(
            rows[13],
            slow,
            lambda: time_launch(tmux, opener, row_filled(marker), cwd=REPO, timeout=60),
        )
        enter: list[float] = []

        def press_enter(session: str) -> None:
            # The row filled, not just shown: the last start's frame shows the same screen
            # while Textual still loads, and a quiet screen would not tell them apart.
            tmux.wait_for(session, row_filled(model, "…", "loading"), since=0, timeout=60)
            settle(tmux, session, timeout=60)
            started = time.perf_counter()
            tmux.send(session, "Enter")
            enter.append(tmux.wait_for(session, row_shown(marker), since=started))

        def one_enter() -> float:
            time_launch(tmux, deep_tui, contains(model), then=press_enter, timeout=60)
            return enter[-1]

        _series(rows[11], slow, one_enter)
    finally:
        tmux.close()
    return [rows[0], rows[14], *rows[1:14]]  # the headline (Textual's own frame) first


# -- keys in-process and on a pty -----------------------------------------------------------


def key_rows(opts: Options, built: dict[str, wsmod.Built]) -> list[Row]:
    """Keystroke → frame (in-process pilot) and bytes per key (pty), on the 10k-version model."""
    deep = built["deep"]
    label = _label(deep)
    rows = [
        Row("cursor down → frame (pilot)", workspace=label, target=12),
        Row("page down → frame (pilot)", workspace=label, target=16),
        Row("page down → new rows' details shown (pilot)", workspace=label),
        Row("bytes per cursor down: first frame (pty)", workspace=label, unit="B"),
        Row("bytes per cursor down until quiet (pty)", workspace=label, unit="B"),
        Row("bytes per page down: first frame (pty)", workspace=label, unit="B"),
        Row("bytes per page down until quiet (pty)", workspace=label, unit="B"),
        Row("TUI peak RSS, model screen", workspace=label, unit="MB"),
    ]
    if tui_available():
        for r in rows:
            r.na = TUI_NA
        return rows
    from bench import pilot_keys

    model = deep.spec.model_name(0)
    figures = pilot_keys.run(deep.path, model, opts.presses)
    rows[0].values = [x * 1e3 for x in figures.first_frame["down"]]
    rows[1].values = [x * 1e3 for x in figures.first_frame["pagedown"]]
    rows[2].values = [x * 1e3 for x in figures.filled["pagedown"]]
    rows[0].note = rows[1].note = "in-process, headless; see docs/performance.md"
    bursts = pty_keys(deep, model, opts.presses)
    for i, key in ((3, "down"), (5, "pagedown")):
        rows[i].values = [float(first) for first, _ in bursts[key]]
        rows[i + 1].values = [float(total) for _, total in bursts[key]]
    rows[4].note = rows[6].note = "incl. the panels that follow the cursor"
    rows[7].values = [bursts["rss"][0][0] / MB]
    return rows


def pty_keys(deep: wsmod.Built, model: str, presses: int) -> dict[str, list[tuple[int, int]]]:
    """(first-burst bytes, bytes until quiet) per key press; and the peak RSS."""
    from bench.pty_session import PtySession

    marker = wsmod.version_name(deep.spec.versions - 2).encode()
    argv = [console_exe(), "-w", str(deep.path), "open", model]
    out: dict[str, list[tuple[int, int]]] = {"down": [], "pagedown": []}
    with PtySession(argv, bench_env(), cwd=REPO) as s:
        s.read_until(marker, timeout=60)
        s.drain(1.0)
        for key in ("down", "pagedown"):
            for _ in range(presses):
                out[key].append(s.key_bursts(key))
    out["rss"] = [(s.vm_hwm, s.max_rss)]
    return out


def _rss_baselines(opts: Options, built: dict[str, wsmod.Built]) -> list[Row]:
    """VmHWM of an empty Textual app and of the TUI on 10 models: what any run starts from."""
    from bench.empty_app import MARKER
    from bench.tui_frames import Tmux, row_filled

    small = built["small"]
    empty = Row("empty Textual app peak RSS", unit="MB", note="baseline")
    tui = Row("TUI peak RSS, overview rows loaded", workspace=_label(small), unit="MB")
    cases = [
        (empty, [sys.executable, "-m", "bench.empty_app"], lambda s: MARKER in s),
        (tui, [console_exe(), "-w", str(small.path)], row_filled("model-0000", "…", "loading")),
    ]
    if tui_available():
        tui.na = TUI_NA
        cases = cases[:1]
    tmux = Tmux(bench_env())
    try:
        for row, argv, done in cases:
            for _ in range(1 if opts.quick else 2):
                session = tmux.launch(argv, cwd=REPO)
                try:
                    pid = tmux.pane_pid(session)
                    tmux.wait_for(session, done, since=time.perf_counter(), timeout=30)
                    time.sleep(0.3)
                    row.values.append(vm_hwm(pid) / MB)
                finally:
                    tmux.kill(session)
    finally:
        tmux.close()
    return [empty, tui]


def rss_rows(opts: Options, built: dict[str, wsmod.Built]) -> list[Row]:
    """Peak RSS of the TUI on 1,000 models (in tmux, VmHWM of the console process): the
    overview's visible rows loaded; then every row, paged through from top to bottom."""
    from bench.tui_frames import Tmux, TmuxError, row_filled

    rows = _rss_baselines(opts, built)
    for name, limit in (("wide-noidx", 60.0), ("wide", 150.0)):
        b = built[name]
        first, last = b.spec.model_name(0), b.spec.model_name(b.spec.models - 1)
        top = Row("TUI peak RSS, overview rows loaded", workspace=_label(b), unit="MB", target=80)
        end = Row(
            "TUI peak RSS, all rows paged through",
            workspace=_label(b),
            unit="MB",
            target=80,
            note="PageDown from the first row to the last, every page shown",
        )
        rows += [top, end]
        if tui_available():
            top.na = end.na = TUI_NA
            continue
        runs = 1 if opts.quick or name == "wide" else 2
        tmux = Tmux(bench_env())
        try:
            for _ in range(runs):
                session = tmux.launch([console_exe(), "-w", str(b.path)])
                try:
                    pid = tmux.pane_pid(session)
                    started = time.perf_counter()
                    tmux.wait_for(session, row_filled(first, "…", "loading"), since=started,
                                  timeout=limit)  # fmt: skip
                    top.values.append(vm_hwm(pid) / MB)
                    for _page in range(b.spec.models // 10):  # ~20 rows a page: twice over
                        tmux.send(session, "PageDown")
                        time.sleep(0.02)
                    started = time.perf_counter()
                    tmux.wait_for(session, row_filled(last, "…", "loading"), since=started,
                                  timeout=limit)  # fmt: skip
                    end.values.append(vm_hwm(pid) / MB)
                except TmuxError:
                    missing = top if not top.values else end
                    missing.na = f"rows not loaded within {limit:.0f} s"
                    break
                finally:
                    tmux.kill(session)
        finally:
            tmux.close()
    return rows


# -- injected latency ------------------------------------------------------------------------


def latency_rows(opts: Options, built: dict[str, wsmod.Built]) -> list[Row]:
    """model_view and the model screen with 50 ms per backend call."""
    from bench import latency

    delay = 0.05
    rows: list[Row] = []
    for name in ("small", "deep"):
        b = built[name]
        model = b.spec.model_name(0)
        pairs = [latency.model_view(b.path, model, delay) for _ in range(opts.slow_runs)]
        for which, runs in (("cold", [c for c, _ in pairs]), ("warm", [w for _, w in pairs])):
            calls = len(runs[0].calls)
            rows.append(
                Row(
                    f"model_view, 50 ms/call, {which}: wall",
                    workspace=_label(b),
                    values=[r.seconds * 1e3 for r in runs],
                    note=f"{calls} calls = {calls * delay * 1e3:.0f} ms if serial",
                )
            )
            rows.append(
                Row(
                    f"model_view, 50 ms/call, {which}: wall / serial sum",
                    workspace=_label(b),
                    unit="x",
                    values=[r.ratio(delay) for r in runs],
                )
            )
    b = built["small"]
    fill = Row("model screen filled, 50 ms/call: wall", workspace=_label(b))
    ratio = Row("model screen filled: wall / serial sum", workspace=_label(b), unit="x")
    if tui_available():
        fill.na = ratio.na = TUI_NA
    else:
        runs = [
            latency.screen_fill(b.path, b.spec.model_name(0), delay) for _ in range(opts.slow_runs)
        ]
        fill.values = [r.seconds * 1e3 for r in runs]
        ratio.values = [r.ratio(delay) for r in runs]
        calls = len(runs[0].calls)
        fill.note = f"{calls} calls, incl. the overview underneath; from app start"
    rows += [fill, ratio]
    return rows


# -- MLflow: the console vs mlflow's own client ---------------------------------------------


def mlflow_rows(opts: Options, built: dict[str, wsmod.Built]) -> list[Row]:
    """``status --json`` on an MLflow server (200 models x 20 versions) vs mlflow's client."""
    from bench.mlflow_compare import mlflow_rows as compare

    return compare(opts, built)


def status_rows(opts: Options, built: dict[str, wsmod.Built]) -> list[Row]:
    """``status --json`` vs the single-pass reference reader at 1,000 and 2,000 models."""
    from bench.status_compare import status_rows as compare

    return compare(opts, built)


def builds(opts: Options) -> dict[str, wsmod.Built]:
    specs = {
        "small": wsmod.SMALL,
        "wide": wsmod.WIDE,
        "wide-noidx": wsmod.Spec("wide", 1000, 5, artifacts_index=False),
        "deep": wsmod.DEEP,
        "wide-2000": wsmod.WIDE_2000,
    }
    out = {}
    for name, spec in specs.items():
        started = time.perf_counter()
        out[name] = wsmod.ensure(spec)
        took = time.perf_counter() - started
        if took > 1:
            print(f"built {spec.key} in {took:.1f}s", file=sys.stderr)
    return out
