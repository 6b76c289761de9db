"""A loopback stand-in for the GitLab REST API v4 (pipelines, jobs, trigger), served by
http.server in a thread. Every JSON body it sends is validated against the fields GitLab's API
documentation lists (gitlab_documented_fields.json); a violation fails the test."""

from __future__ import annotations

import json
import re
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from jsonschema import Draft202012Validator, FormatChecker

FIELDS = Path(__file__).with_name("gitlab_documented_fields.json")
PROJECT, PROJECT_ID = "ml/fraud-model", 42
API_TOKEN = "glpat-stubAPItoken0123456789"
TRIGGER_TOKEN = "glptt-stubTRIGGERtoken0123456789"

FORMATS = FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    if isinstance(value, str):
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    return True


class DocumentedFields:
    """Validators for the responses the stub sends, from GitLab's documented fields."""

    def __init__(self) -> None:
        self.doc = json.loads(FIELDS.read_text())
        self._validators: dict[str, Draft202012Validator] = {}

    def errors(self, operation: str, body: Any) -> list[str]:
        validator = self._validators.get(operation)
        if validator is None:
            schema = {"$defs": self.doc["$defs"], **self.doc["responses"][operation]}
            validator = Draft202012Validator(schema, format_checker=FORMATS)
            self._validators[operation] = validator
        return [
            f"{operation}: {'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
            for e in validator.iter_errors(body)
        ]


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


USER = {
    "id": 1,
    "username": "alice",
    "name": "Alice",
    "state": "active",
    "avatar_url": None,
    "web_url": "https://gitlab.example/alice",
}


@dataclass
class Scripted:
    """A canned answer for requests matching ``method`` and the ``path`` regex."""

    method: str
    path: str
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1
    operation: str = "error"  # the documented response to validate ``body`` against; "" skips


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


class GitLabStub:
    """State of the fake API: pipelines, jobs, canned failures, what was asked."""

    def __init__(self) -> None:
        self.fields = DocumentedFields()
        self.lock = threading.Lock()
        self.pipelines: dict[int, dict[str, Any]] = {}
        self.jobs: dict[int, list[dict[str, Any]]] = {}
        self.scripted: list[Scripted] = []
        self.seen: list[Seen] = []
        self.errors: list[str] = []
        self.progress: dict[int, list[str]] = {}
        self.final_status = "success"
        self.base = ""
        self._next_id = 7000

    # -- objects ------------------------------------------------------------------------

    def web(self, suffix: str) -> str:
        return f"https://gitlab.example/{PROJECT}/-/{suffix}"

    def add_pipeline(
        self,
        pid: int,
        sha: str,
        *,
        status: str = "success",
        source: str = "push",
        created: str = "2024-05-01T10:00:00.000Z",
        name: str | None = "Build pipeline",
        ref: str = "main",
    ) -> dict[str, Any]:
        finished = status in {"success", "failed", "canceled", "skipped", "manual"}
        pipeline: dict[str, Any] = {
            "id": pid,
            "iid": pid - 100,
            "project_id": PROJECT_ID,
            "sha": sha,
            "ref": ref,
            "status": status,
            "source": source,
            "created_at": created,
            "updated_at": created,
            "web_url": self.web(f"pipelines/{pid}"),
            "before_sha": "0" * 40,
            "tag": False,
            "yaml_errors": None,
            "user": USER,
            "started_at": created,
            "finished_at": created if finished else None,
            "committed_at": None,
            "duration": 30 if finished else None,
            "queued_duration": 0.5,
            "coverage": None,
            "detailed_status": {
                "icon": f"status_{status}",
                "text": status,
                "label": status,
                "group": status,
                "tooltip": status,
                "has_details": True,
                "details_path": f"/{PROJECT}/-/pipelines/{pid}",
                "illustration": None,
                "favicon": f"/assets/ci_favicons/favicon_status_{status}.png",
            },
        }
        if name is not None:
            pipeline["name"] = name
        self.pipelines[pid] = pipeline
        return pipeline

    def add_job(
        self,
        pid: int,
        jid: int,
        name: str,
        *,
        stage: str = "test",
        status: str = "success",
        allow_failure: bool = False,
        started: str = "2024-05-01T10:01:00.000Z",
        finished: str | None = "2024-05-01T10:05:00.000Z",
    ) -> dict[str, Any]:
        p = self.pipelines[pid]
        job = {
            "commit": {
                "author_email": "alice@example.com",
                "author_name": "Alice",
                "created_at": "2024-05-01T09:59:00.000+02:00",
                "id": p["sha"],
                "message": "train model",
                "short_id": p["sha"][:8],
                "title": "train model",
            },
            "coverage": None,
            "allow_failure": allow_failure,
            "created_at": p["created_at"],
            "started_at": started,
            "finished_at": finished,
            "duration": 240.0 if finished else None,
            "queued_duration": 0.1,
            "id": jid,
            "name": name,
            "pipeline": {k: p[k] for k in ("id", "project_id", "ref", "sha", "status")},
            "ref": p["ref"],
            "artifacts": [],
            "runner": None,
            "stage": stage,
            "status": status,
            "tag": False,
            "web_url": self.web(f"jobs/{jid}"),
            "project": {"ci_job_token_scope_enabled": False},
            "user": USER,
        }
        if status == "failed":
            job["failure_reason"] = "script_failure"
        self.jobs.setdefault(pid, []).append(job)
        return job

    # -- serving ------------------------------------------------------------------------

    def answer(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: Any
    ) -> tuple[int, str, Any, dict[str, str]]:
        """(status, operation to validate against, body, extra headers) for one request."""
        with self.lock:
            self.seen.append(Seen(method, path, query, headers, body))
            for s in self.scripted:
                if s.times > 0 and s.method == method and re.fullmatch(s.path, path):
                    s.times -= 1
                    return s.status, s.operation, s.body, s.headers
            project = re.fullmatch(r"/api/v4/projects/([^/]+)(/.*)?", path)
            if project is None or unquote(project[1]) not in {PROJECT, str(PROJECT_ID)}:
                return 404, "error", {"message": "404 Project Not Found"}, {}
            rest = project[2] or ""
            if method == "POST" and rest == "/trigger/pipeline":
                return self._trigger(body)
            if headers.get("authorization") != f"Bearer {API_TOKEN}":
                return 401, "error", {"message": "401 Unauthorized"}, {}
            return self._route(method, rest, path, query, body)

    def _route(
        self, method: str, rest: str, path: str, query: dict[str, str], body: Any
    ) -> tuple[int, str, Any, dict[str, str]]:
        if method == "GET" and rest == "":
            return (
                200,
                "get-project",
                {
                    "id": PROJECT_ID,
                    "path_with_namespace": PROJECT,
                    "web_url": f"https://gitlab.example/{PROJECT}",
                },
                {},
            )
        if method == "GET" and rest == "/pipelines":
            found = [p for p in self.pipelines.values() if query.get("sha") in (None, p["sha"])]
            found.sort(key=lambda p: p["id"], reverse=query.get("sort", "desc") == "desc")
            basic = [
                {
                    k: p[k]
                    for k in (
                        "id",
                        "iid",
                        "project_id",
                        "sha",
                        "ref",
                        "status",
                        "source",
                        "created_at",
                        "updated_at",
                        "web_url",
                        "name",
                    )
                    if k in p
                }
                for p in found
            ]
            page, links = self._page(path, query, basic)
            return 200, "list-project-pipelines", page, links
        if method == "GET" and (m := re.fullmatch(r"/pipelines/(\d+)", rest)):
            pipeline = self.pipelines.get(int(m[1]))
            if pipeline is None:
                return 404, "error", {"message": "404 Not found"}, {}
            self._advance(pipeline)
            return 200, "get-pipeline", pipeline, {}
        if method == "GET" and (m := re.fullmatch(r"/pipelines/(\d+)/jobs", rest)):
            jobs = sorted(self.jobs.get(int(m[1]), []), key=lambda j: j["id"], reverse=True)
            page, links = self._page(path, query, jobs)
            return 200, "list-pipeline-jobs", page, links
        if method == "POST" and rest == "/pipeline":
            ok = (
                isinstance(body, dict)
                and isinstance(body.get("ref"), str)
                and all(
                    isinstance(v, dict) and set(v) <= {"key", "value", "variable_type"}
                    for v in body.get("variables", [])
                )
            )
            if not ok:
                return 400, "error", {"message": {"base": ["Invalid request"]}}, {}
            return self._create(
                body["ref"], "api", {v["key"]: v["value"] for v in body.get("variables", [])}
            )
        return 404, "error", {"message": "404 Not Found"}, {}

    def _trigger(self, form: Any) -> tuple[int, str, Any, dict[str, str]]:
        if not isinstance(form, dict) or form.get("token") != TRIGGER_TOKEN:
            return 404, "error", {"message": "404 Not Found"}, {}
        if not form.get("ref"):
            return 400, "error", {"error": "ref is missing"}, {}
        variables = {
            k[len("variables[") : -1]: v for k, v in form.items() if k.startswith("variables[")
        }
        return self._create(form["ref"], "trigger", variables)

    def _create(
        self, ref: str, source: str, variables: dict[str, str]
    ) -> tuple[int, str, Any, dict[str, str]]:
        self._next_id += 1
        pid = self._next_id
        pipeline = self.add_pipeline(
            pid,
            "d" * 40,
            status="created",
            source=source,
            created=iso(time.time()),
            name=None,
            ref=ref,
        )
        pipeline["variables"] = variables  # kept for the tests; removed from what is sent
        self.progress[pid] = ["pending", "running", self.final_status]
        created = {
            k: v for k, v in pipeline.items() if k not in {"source", "detailed_status", "variables"}
        }
        return 201, "create-pipeline" if source == "api" else "trigger-pipeline", created, {}

    def _advance(self, pipeline: dict[str, Any]) -> None:
        steps = self.progress.get(pipeline["id"])
        if steps:
            pipeline["status"] = steps.pop(0)
            pipeline["detailed_status"]["group"] = pipeline["status"]
            if pipeline["status"] in {"success", "failed", "canceled", "manual"}:
                pipeline["finished_at"] = pipeline["updated_at"] = iso(time.time())

    def _page(
        self, path: str, query: dict[str, str], items: list[Any]
    ) -> tuple[list[Any], dict[str, str]]:
        per_page = min(int(query.get("per_page", "20")), 100)
        page = int(query.get("page", "1"))
        chunk = items[(page - 1) * per_page : page * per_page]
        last = max(1, -(-len(items) // per_page))
        headers = {"X-Page": str(page), "X-Per-Page": str(per_page), "X-Total": str(len(items))}
        if page < last:
            keep = "&".join(f"{k}={v}" for k, v in query.items() if k != "page")
            headers["X-Next-Page"] = str(page + 1)
            headers["Link"] = (
                f'<{self.base}{path}?{keep}&page={page + 1}>; rel="next", '
                f'<{self.base}{path}?{keep}&page=1>; rel="first", '
                f'<{self.base}{path}?{keep}&page={last}>; rel="last"'
            )
        return chunk, headers

    def check(self, operation: str, body: Any) -> None:
        if operation and body is not None:
            sent = body
            if isinstance(body, dict) and "variables" in body and operation == "get-pipeline":
                sent = {k: v for k, v in body.items() if k != "variables"}
            self.errors += self.fields.errors(operation, sent)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _serve(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        ctype = self.headers.get("Content-Type", "")
        body: Any = None
        if raw and "json" in ctype:
            body = json.loads(raw)
        elif raw:
            body = {k: v[-1] for k, v in parse_qs(raw.decode()).items()}
        headers = {k.lower(): v for k, v in self.headers.items()}
        stub = self.server.stub
        status, operation, payload, extra = stub.answer(
            self.command, url.path, query, headers, body
        )
        if isinstance(payload, dict) and "variables" in payload:
            payload = {k: v for k, v in payload.items() if k != "variables"}
        page = isinstance(payload, bytes)  # a proxy's or a web server's HTML page
        if not page:
            stub.check(operation, payload)
        data = payload if page else b"" if payload is None else json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html" if page else "application/json")
        for key, value in extra.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    stub: GitLabStub


@contextmanager
def serve(stub: GitLabStub):  # type: ignore[no-untyped-def]
    """Run ``stub`` on a free loopback port; yields its base URL; always stops it."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.stub = stub
    stub.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield stub.base
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
