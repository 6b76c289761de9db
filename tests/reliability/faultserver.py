"""A loopback HTTP server that injects one fault per *cell* (a path prefix), and counts requests.

``/CELL/...`` is answered according to the cell's mode: ``good`` (the cell's handler), or one
of the server-side faults of FAULTS. The two client-side faults need no server: ``refused`` is
a loopback port nobody listens on, ``dns`` a name under ``.invalid`` whose lookup the
``fake_dns`` fixture answers locally (see docs/reliability.md: a real lookup would be sent to
the machine's resolver). Every request is recorded with its arrival time, so tests can assert
how often a read was retried and that a mutation was sent exactly once.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

HUGE_BYTES = 50 * 1024 * 1024
RETRY_AFTER = 1  # seconds a 429 asks for
STATUS_FAULTS = {"http_500": 500, "http_502": 502, "http_503": 503, "http_504": 504,
                 "http_429": 429, "http_401": 401, "http_403": 403, "http_404": 404}  # fmt: skip
SERVER_FAULTS = (
    "blackhole",  # accepts, reads the request, never answers
    "read_timeout",  # answers, but only long after the client's timeout
    "slow_body",  # headers at once, then the body one byte at a time
    *STATUS_FAULTS,
    "malformed",  # 200 with broken JSON (or broken exposition text)
    "wrong_shape",  # 200 with valid JSON of the wrong shape
    "empty",  # 200 with an empty body
    "huge",  # 200 with a 50 MB body
)
CLIENT_FAULTS = ("refused", "dns")
FAULTS = (*CLIENT_FAULTS, *SERVER_FAULTS)
DNS_HOST = "cd4ml-fault.invalid"

Reply = tuple[int, dict[str, str], bytes]
Handler = Callable[["Hit"], Reply]


@dataclass(frozen=True)
class Hit:
    """One request as the server saw it."""

    at: float  # time.monotonic() on arrival
    method: str
    path: str  # below the cell prefix, e.g. /api/v1/query
    query: dict[str, list[str]]
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def key(self) -> tuple[str, str, str]:
        """What identifies a logical request (its retries share the key)."""
        return self.method, self.path, json.dumps(sorted(self.query.items()))

    def json(self) -> Any:
        return json.loads(self.body or b"null")


@dataclass
class Cell:
    """The behaviour of one path prefix: a mode, a good handler, and what arrived."""

    handler: Handler
    mode: str = "good"
    methods: frozenset[str] = frozenset({"GET", "POST", "PUT", "DELETE", "PATCH"})
    hits: list[Hit] = field(default_factory=list)
    trickle: float = 0.3  # seconds between body bytes of slow_body
    stall: float = 10.0  # seconds read_timeout waits before answering


def json_reply(doc: Any, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    return status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(doc).encode()


def fault_reply(mode: str) -> Reply:
    """The canned answer of a status or body fault."""
    if mode in STATUS_FAULTS:
        code = STATUS_FAULTS[mode]
        headers = {"Retry-After": str(RETRY_AFTER)} if code == 429 else {}
        return json_reply({"message": f"injected HTTP {code}"}, code, headers)
    if mode == "malformed":
        return 200, {"Content-Type": "application/json"}, b'{"status": "success", "data": [1, 2'
    if mode == "wrong_shape":
        return json_reply([{"unexpected": True, "value": 1}])
    if mode == "empty":
        return 200, {"Content-Type": "application/json"}, b""
    raise ValueError(mode)


class FaultServer:
    """The server; use as a context manager. ``url(cell)`` is the base URL of a cell."""

    def __init__(self) -> None:
        self.cells: dict[str, Cell] = {}
        self.stopping = threading.Event()
        self.lock = threading.Lock()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                return None

            def _any(self) -> None:
                owner.serve(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _any

        class Server(ThreadingHTTPServer):
            request_queue_size = 1024  # every cell connects at once
            daemon_threads = True
            block_on_close = False

            def handle_error(self, request: Any, client_address: Any) -> None:
                return None  # clients hang up on faults all the time: that is the point

        self.httpd = Server(("127.0.0.1", 0), Handler)
        self.port = int(self.httpd.server_address[1])
        self.base = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FaultServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopping.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)

    # -- cells ------------------------------------------------------------------------------

    def add(self, name: str, handler: Handler, **kw: Any) -> Cell:
        cell = Cell(handler=handler, **kw)
        with self.lock:
            self.cells[name] = cell
        return cell

    def url(self, name: str, fault: str = "good") -> str:
        """Base URL of cell ``name`` as a client would reach it with ``fault``."""
        if fault == "refused":
            return f"http://127.0.0.1:{closed_port()}/{name}"
        if fault == "dns":
            return f"http://{DNS_HOST}:{self.port}/{name}"
        return f"{self.base}/{name}"

    # -- serving ----------------------------------------------------------------------------

    def serve(self, req: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(req.path)
        name, _, rest = parts.path.lstrip("/").partition("/")
        length = int(req.headers.get("Content-Length") or 0)
        body = req.rfile.read(length) if length else b""
        cell = self.cells.get(name)
        if cell is None:
            self._send(req, json_reply({"message": f"no cell {name}"}, 404))
            return
        hit = Hit(time.monotonic(), req.command, "/" + rest, parse_qs(parts.query), body,
                  dict(req.headers.items()))  # fmt: skip
        with self.lock:
            cell.hits.append(hit)
        mode = cell.mode if req.command in cell.methods else "good"
        try:
            self._answer(req, cell, mode, hit)
        except (BrokenPipeError, ConnectionResetError, TimeoutError):
            req.close_connection = True

    def _answer(self, req: BaseHTTPRequestHandler, cell: Cell, mode: str, hit: Hit) -> None:
        if mode == "good":
            self._send(req, cell.handler(hit))
        elif mode == "blackhole":
            self.stopping.wait(60)
            req.close_connection = True
        elif mode == "read_timeout":
            if not self.stopping.wait(cell.stall):
                self._send(req, cell.handler(hit))
        elif mode == "slow_body":
            status, headers, body = cell.handler(hit)
            self._head(req, status, headers, len(body))
            for i in range(len(body)):
                if self.stopping.wait(cell.trickle):
                    break
                req.wfile.write(body[i : i + 1])
                req.wfile.flush()
            req.close_connection = True
        elif mode == "huge":
            self._head(req, 200, {"Content-Type": "application/json"}, HUGE_BYTES)
            chunk = b"x" * (1 << 20)
            req.wfile.write(b'{"pad": "' + chunk[: (1 << 20) - 9])
            for _ in range(HUGE_BYTES // len(chunk) - 2):
                if self.stopping.is_set():
                    break
                req.wfile.write(chunk)
            req.wfile.write(chunk[:-2] + b'"}')
            req.close_connection = True
        else:
            self._send(req, fault_reply(mode))

    @staticmethod
    def _head(req: BaseHTTPRequestHandler, status: int, headers: dict[str, str], n: int) -> None:
        req.send_response(status)
        for key, value in headers.items():
            req.send_header(key, value)
        req.send_header("Content-Length", str(n))
        req.end_headers()

    def _send(self, req: BaseHTTPRequestHandler, reply: Reply) -> None:
        status, headers, body = reply
        self._head(req, status, headers, len(body))
        req.wfile.write(body)


def closed_port() -> int:
    """A loopback port with nobody listening (bound, then closed): connecting is refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running() -> Iterator[FaultServer]:
    with FaultServer() as server:
        yield server
