"""Run the demo: build the workspace, start the model server (with traffic) as a subprocess on
a free loopback port, open the TUI on it, and always stop the server afterwards."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from types import FrameType
from typing import NoReturn

from console.demo.build import HOST, DemoError, build_demo, free_port, is_demo_dir
from console.demo.content import CONFIG_NAME

HEALTH_TIMEOUT = 20.0
STOP_GRACE = 3.0
LOG_NAME = "demo-server.log"
_URL_LINE = re.compile(r'^(url\s*=\s*"http://127\.0\.0\.1:)(\d+)(/metrics")', re.MULTILINE)

Echo = Callable[[str], None]

__all__ = [
    "DemoError",
    "ServerProcess",
    "default_demo_dir",
    "free_port",
    "run_demo",
    "serve_demo",
    "start_server",
    "wait_for_interrupt",
]


def default_demo_dir() -> Path:
    """Where the demo lives when no folder is given: the user data dir's ``demo``."""
    from platformdirs import user_data_dir

    return Path(user_data_dir("cd4ml-console")) / "demo"


def _echo(text: str) -> None:
    print(text, flush=True)


def port_is_free(port: int, host: str = HOST) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the HTTP server binds: a port in TIME_WAIT from the last run is free to reuse.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def metrics_port(config_path: Path) -> int | None:
    """The port of the metrics URL in the demo config, None when it has none."""
    match = _URL_LINE.search(config_path.read_text(encoding="utf-8"))
    return int(match.group(2)) if match else None


def set_metrics_port(config_path: Path, port: int) -> None:
    """Point the demo config's metrics URL at ``port``."""
    text = config_path.read_text(encoding="utf-8")
    new, count = _URL_LINE.subn(lambda m: f"{m.group(1)}{port}{m.group(3)}", text)
    if count != 1:
        raise DemoError(f"{config_path}: no backends.metrics url line to point at port {port}")
    config_path.write_text(new, encoding="utf-8")


def health(url: str, timeout: float = 1.0) -> dict[str, object] | None:
    """The server's /healthz document when it is up and ready, else None."""
    try:
        with urllib.request.urlopen(f"{url}/healthz", timeout=timeout) as response:
            doc = json.loads(response.read())
            return doc if isinstance(doc, dict) else None
    except (urllib.error.URLError, OSError, ValueError):
        return None


class ServerProcess:
    """The model server as a child process: ``python -m console.demo.server``."""

    def __init__(self, workspace: Path, port: int, *, rps: float = 3.0) -> None:
        self.workspace = workspace
        self.port = port
        self.url = f"http://{HOST}:{port}"
        self.log_path = workspace / ".cd4ml" / LOG_NAME
        self.rps = rps
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> ServerProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        argv = [
            sys.executable,
            "-m",
            "console.demo.server",
            "--workspace",
            str(self.workspace),
            "--host",
            HOST,
            "--port",
            str(self.port),
            "--rps",
            str(self.rps),
            "--parent-pid",
            str(os.getpid()),
        ]
        with self.log_path.open("ab") as log:
            # Its own session: a Ctrl+C meant for the TUI must not kill it behind our back.
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def wait_healthy(self, timeout: float = HEALTH_TIMEOUT) -> None:
        """Return once /healthz says ready; DemoError if it exits or the timeout passes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc is not None and self.proc.poll() is not None:
                raise DemoError(
                    f"the demo model server exited with code {self.proc.returncode} before it "
                    f"was ready:\n{self.log_tail()}\n(full log: {self.log_path})"
                )
            doc = health(self.url, timeout=0.5)
            if doc is not None and doc.get("status") == "ok":
                return
            time.sleep(0.1)
        raise DemoError(
            f"the demo model server did not answer {self.url}/healthz within {timeout:.0f}s; "
            f"see {self.log_path}:\n{self.log_tail()}"
        )

    def log_tail(self, lines: int = 8) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.strip().splitlines()[-lines:]) or "(empty log)"

    def stop(self) -> None:
        """Terminate, then kill after a grace period; safe to call twice."""
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(STOP_GRACE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def start_server(workspace: Path, *, attempts: int = 3, rps: float = 3.0) -> ServerProcess:
    """Start the server on a free port, rewrite the config's metrics URL, wait until healthy."""
    config = workspace / CONFIG_NAME
    last: DemoError | None = None
    for _ in range(attempts):
        port = free_port()
        server = ServerProcess(workspace, port, rps=rps).start()
        try:
            server.wait_healthy()
        except DemoError as exc:  # most likely the port was taken between pick and bind
            server.stop()
            last = exc
            continue
        except BaseException:
            server.stop()
            raise
        set_metrics_port(config, port)
        return server
    assert last is not None
    raise last


@contextlib.contextmanager
def exit_on_signals() -> Iterator[None]:
    """Turn SIGTERM and SIGHUP into SystemExit so every ``finally`` runs (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum: int, _frame: FrameType | None) -> NoReturn:
        raise SystemExit(128 + signum)

    previous = {sig: signal.signal(sig, _raise) for sig in (signal.SIGTERM, signal.SIGHUP)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def wait_for_interrupt(path: Path, echo: Echo = _echo) -> int:
    """A stand-in for the TUI: say where things are and wait for Ctrl+C."""
    echo(f"Demo workspace ready in {path}. Press Ctrl+C to stop the model server.")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        echo("")
    return 0


def run_demo(
    dir: Path | None = None,
    *,
    seed: int = 7,
    no_tui: bool = False,
    open_tui: Callable[[Path], int] | None = None,
    now: datetime | None = None,
    echo: Echo = _echo,
) -> int:
    """Build the demo in ``dir``, serve it and open the TUI; stops everything it started.

    Raises DemoError (exit code 2) when the folder can not be used or the server does not start.
    """
    path = Path(dir) if dir is not None else default_demo_dir()
    info = build_demo(path, seed=seed, now=now)
    echo(
        f"Built the demo in {info.path}: {len(info.models)} models, {info.commits} commits, "
        f"{len(info.tags)} registry tags, {info.ci_runs} CI runs (seed {seed})."
    )
    if no_tui:
        echo(f"Serve it with: cd4ml-console demo {info.path} --serve")
        return 0
    with exit_on_signals():
        server = start_server(info.path)
        try:
            echo(
                f"Model server on {server.url} (metrics: {server.url}/metrics, log: {server.log_path})."
            )
            opener = open_tui or (lambda p: wait_for_interrupt(p, echo))
            return opener(info.path)
        finally:
            server.stop()


def serve_demo(dir: Path | None = None, *, echo: Echo = _echo) -> int:
    """Run just the model server and traffic for an existing demo, in the foreground."""
    from console.demo.build import read_marker
    from console.demo.server import ModelServer

    path = (Path(dir) if dir is not None else default_demo_dir()).expanduser().resolve()
    if not is_demo_dir(path):
        raise DemoError(
            f"{path} is not a cd4ml-console demo; build it first: cd4ml-console demo {path}"
        )
    config = path / CONFIG_NAME
    port = metrics_port(config) if config.is_file() else None
    if port is None or not port_is_free(port):
        port = free_port()
        if config.is_file():
            set_metrics_port(config, port)
    seed = read_marker(path).get("seed", 7)
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        server = ModelServer(path, HOST, port, seed=int(seed) if isinstance(seed, int) else 7)
    except OSError as exc:
        raise DemoError(f"can not listen on {HOST}:{port}: {exc.strerror or exc}") from None
    server.start()
    if not server.wait_ready(10):
        server.stop()
        raise DemoError(f"the model server could not read the registry in {path}")
    echo(f"Serving {path} on {server.url} (metrics: {server.url}/metrics). Ctrl+C stops it.")
    server.serve_until_stopped()
    return 0
