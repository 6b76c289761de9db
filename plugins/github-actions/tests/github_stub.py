"""A loopback stand-in for the GitHub REST API (Actions endpoints), served by http.server in a
thread. Every JSON body it sends is validated against the schemas copied from GitHub's
published OpenAPI description (github_openapi_subset.json); a violation is recorded in
``errors`` and fails the test that caused it."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from jsonschema import Draft202012Validator, FormatChecker

SUBSET = Path(__file__).with_name("github_openapi_subset.json")
OWNER, REPO = "acme", "fraud-model"
TOKEN = "ghp_stubTOKEN0123456789abcdefABCDEF0123"
DOCS = "https://docs.github.com/rest"


def _nullable_to_jsonschema(node: Any) -> Any:
    """OpenAPI 3.0's ``nullable: true`` written as JSON Schema (type or enum admits null)."""
    if isinstance(node, list):
        return [_nullable_to_jsonschema(n) for n in node]
    if not isinstance(node, dict):
        return node
    out = {k: _nullable_to_jsonschema(v) for k, v in node.items() if k != "nullable"}
    if node.get("nullable") is True:
        if "type" in out:
            out["type"] = [out["type"], "null"]
            if "enum" in out:
                out["enum"] = [*out["enum"], None]
        else:
            out = {"anyOf": [out, {"type": "null"}]}
    return out


FORMATS = FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    if isinstance(value, str):
        datetime.fromisoformat(value.replace("Z", "+00:00"))
    return True


class OpenApiSubset:
    """Validators for the operations the stub serves, from the published description."""

    def __init__(self, path: Path = SUBSET) -> None:
        self.doc = json.loads(path.read_text())
        self.root = _nullable_to_jsonschema({"components": self.doc["components"]})
        self.root["responses"] = _nullable_to_jsonschema(self.doc["responses"])
        self._validators: dict[str, Draft202012Validator] = {}

    def errors(self, operation: str, body: Any) -> list[str]:
        validator = self._validators.get(operation)
        if validator is None:
            pointer = operation.replace("~", "~0").replace("/", "~1")
            schema = {**self.root, "$ref": f"#/responses/{pointer}"}
            validator = Draft202012Validator(schema, format_checker=FORMATS)
            self._validators[operation] = validator
        return [
            f"{operation}: {'/'.join(map(str, e.absolute_path)) or '(root)'}: {e.message}"
            for e in validator.iter_errors(body)
        ]


def iso(t: float | datetime) -> str:
    when = t if isinstance(t, datetime) else datetime.fromtimestamp(t, UTC)
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def user(login: str, uid: int, base: str) -> dict[str, Any]:
    """A simple-user object as GitHub returns it."""
    api = f"{base}/users/{login}"
    return {
        "login": login,
        "id": uid,
        "node_id": f"U_{uid}",
        "avatar_url": f"https://avatars.example/u/{uid}",
        "gravatar_id": "",
        "url": api,
        "html_url": f"https://github.example/{login}",
        "followers_url": f"{api}/followers",
        "following_url": f"{api}/following{{/other_user}}",
        "gists_url": f"{api}/gists{{/gist_id}}",
        "starred_url": f"{api}/starred{{/owner}}{{/repo}}",
        "subscriptions_url": f"{api}/subscriptions",
        "organizations_url": f"{api}/orgs",
        "repos_url": f"{api}/repos",
        "events_url": f"{api}/events{{/privacy}}",
        "received_events_url": f"{api}/received_events",
        "type": "User",
        "site_admin": False,
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
    checked: bool = True  # validate the body against the error schema


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


class GitHubStub:
    """State of the fake API: runs, jobs, workflows, canned failures, what was asked."""

    def __init__(self) -> None:
        self.schemas = OpenApiSubset()
        self.lock = threading.Lock()
        self.runs: dict[int, dict[str, Any]] = {}
        self.jobs: dict[int, list[dict[str, Any]]] = {}
        self.workflows: dict[str, dict[str, Any]] = {}
        self.scripted: list[Scripted] = []
        self.seen: list[Seen] = []
        self.errors: list[str] = []
        self.rate_remaining = 4999
        self.dispatch_conclusion = "success"
        self.dispatch_creates_run = True
        self.progress: dict[int, list[str]] = {}  # run id -> statuses still to go through
        self.base = ""
        self._next_id = 9000
        self.on_dispatch: Callable[[dict[str, Any]], None] | None = None

    # -- objects ------------------------------------------------------------------------

    def repo_api(self) -> str:
        return f"{self.base}/repos/{OWNER}/{REPO}"

    def add_workflow(self, file: str, name: str, wid: int) -> dict[str, Any]:
        wf = {
            "id": wid,
            "node_id": f"W_{wid}",
            "name": name,
            "path": f".github/workflows/{file}",
            "state": "active",
            "created_at": "2024-01-01T00:00:00Z",
            "updated_at": "2024-01-01T00:00:00Z",
            "url": f"{self.repo_api()}/actions/workflows/{wid}",
            "html_url": f"https://github.example/{OWNER}/{REPO}/blob/main/.github/workflows/{file}",
            "badge_url": f"https://github.example/{OWNER}/{REPO}/workflows/{name}/badge.svg",
        }
        self.workflows[file] = wf
        return wf

    def add_run(
        self,
        rid: int,
        sha: str,
        *,
        workflow: str = "ci.yml",
        status: str = "completed",
        conclusion: str | None = "success",
        created: str = "2024-05-01T10:00:00Z",
        event: str = "push",
        number: int | None = None,
        branch: str = "main",
        attempt: int = 1,
    ) -> dict[str, Any]:
        wf = self.workflows.get(workflow) or self.add_workflow(
            workflow, workflow.split(".")[0].upper(), len(self.workflows) + 100
        )
        api = f"{self.repo_api()}/actions/runs/{rid}"
        run = {
            "id": rid,
            "name": wf["name"],
            "node_id": f"WFR_{rid}",
            "check_suite_id": rid + 1,
            "check_suite_node_id": f"CS_{rid}",
            "head_branch": branch,
            "head_sha": sha,
            "path": f".github/workflows/{workflow}@refs/heads/{branch}",
            "display_title": f"run {rid}",
            "run_number": number if number is not None else rid % 1000,
            "run_attempt": attempt,
            "referenced_workflows": [],
            "event": event,
            "status": status,
            "conclusion": conclusion if status == "completed" else None,
            "workflow_id": wf["id"],
            "url": api,
            "html_url": f"https://github.example/{OWNER}/{REPO}/actions/runs/{rid}",
            "pull_requests": [],
            "created_at": created,
            "updated_at": created,
            "run_started_at": created,
            "actor": user("alice", 1, self.base),
            "triggering_actor": user("alice", 1, self.base),
            "jobs_url": f"{api}/jobs",
            "logs_url": f"{api}/logs",
            "check_suite_url": f"{self.repo_api()}/check-suites/{rid + 1}",
            "artifacts_url": f"{api}/artifacts",
            "cancel_url": f"{api}/cancel",
            "rerun_url": f"{api}/rerun",
            "previous_attempt_url": None,
            "workflow_url": wf["url"],
            "head_commit": {
                "id": sha,
                "tree_id": "f" * 40,
                "message": "train model",
                "timestamp": created,
                "author": {"name": "Alice", "email": "alice@example.com"},
                "committer": {"name": "Alice", "email": "alice@example.com"},
            },
            "repository": {"id": 1, "name": REPO, "full_name": f"{OWNER}/{REPO}"},
            "head_repository": {"id": 1, "name": REPO, "full_name": f"{OWNER}/{REPO}"},
        }
        self.runs[rid] = run
        return run

    def add_job(
        self,
        rid: int,
        jid: int,
        name: str,
        status: str = "completed",
        conclusion: str | None = "success",
    ) -> dict[str, Any]:
        run = self.runs[rid]
        job = {
            "id": jid,
            "run_id": rid,
            "run_url": run["url"],
            "run_attempt": run["run_attempt"],
            "node_id": f"J_{jid}",
            "head_sha": run["head_sha"],
            "url": f"{self.repo_api()}/actions/jobs/{jid}",
            "html_url": f"https://github.example/{OWNER}/{REPO}/actions/runs/{rid}/job/{jid}",
            "status": status,
            "conclusion": conclusion if status == "completed" else None,
            "created_at": run["created_at"],
            "started_at": run["created_at"],
            "completed_at": run["updated_at"] if status == "completed" else None,
            "name": name,
            "steps": [
                {"name": "Set up job", "status": "completed", "conclusion": "success", "number": 1}
            ],
            "check_run_url": f"{self.repo_api()}/check-runs/{jid}",
            "labels": ["ubuntu-latest"],
            "runner_id": 7,
            "runner_name": "GitHub Actions 7",
            "runner_group_id": 1,
            "runner_group_name": "GitHub Actions",
            "workflow_name": run["name"],
            "head_branch": run["head_branch"],
        }
        self.jobs.setdefault(rid, []).append(job)
        return job

    # -- serving ------------------------------------------------------------------------

    def answer(
        self, method: str, path: str, query: dict[str, str], headers: dict[str, str], body: Any
    ) -> tuple[int, Any, dict[str, str], bool]:
        """(status, JSON body or None, extra headers, validate) for one request."""
        with self.lock:
            self.seen.append(Seen(method, path, query, headers, body))
            for s in self.scripted:
                if s.times > 0 and s.method == method and re.fullmatch(s.path, path):
                    s.times -= 1
                    return s.status, s.body, s.headers, s.checked
            if headers.get("authorization") != f"Bearer {TOKEN}":
                return (
                    401,
                    {"message": "Bad credentials", "documentation_url": DOCS, "status": "401"},
                    {},
                    True,
                )
            return self._route(method, path, query, body)

    def _route(
        self, method: str, path: str, query: dict[str, str], body: Any
    ) -> tuple[int, Any, dict[str, str], bool]:
        prefix = f"/repos/{OWNER}/{REPO}/actions"
        if not path.startswith(prefix):
            return 404, {"message": "Not Found", "documentation_url": DOCS}, {}, True
        rest = path[len(prefix) :]
        if method == "GET" and rest == "/runs":
            return self._list_runs(path, query, list(self.runs.values()))
        if method == "GET" and (m := re.fullmatch(r"/runs/(\d+)", rest)):
            run = self.runs.get(int(m[1]))
            if run is None:
                return 404, {"message": "Not Found", "documentation_url": DOCS}, {}, True
            self._advance(run)
            return 200, ("actions/get-workflow-run", run), {}, True
        if method == "GET" and (m := re.fullmatch(r"/runs/(\d+)/jobs", rest)):
            jobs = self.jobs.get(int(m[1]), [])
            page, links = self._page(path, query, jobs)
            return (
                200,
                ("actions/list-jobs-for-workflow-run", {"total_count": len(jobs), "jobs": page}),
                links,
                True,
            )
        if method == "GET" and rest == "/workflows":
            wfs = list(self.workflows.values())
            return 200, ("workflows", {"total_count": len(wfs), "workflows": wfs}), {}, True
        if m := re.fullmatch(r"/workflows/([^/]+)(/runs|/dispatches)?", rest):
            wf = self.workflows.get(m[1]) or next(
                (w for w in self.workflows.values() if str(w["id"]) == m[1]), None
            )
            if wf is None:
                return 404, {"message": "Not Found", "documentation_url": DOCS}, {}, True
            if method == "GET" and not m[2]:
                return 200, ("actions/get-workflow", wf), {}, True
            if method == "GET" and m[2] == "/runs":
                runs = [r for r in self.runs.values() if r["workflow_id"] == wf["id"]]
                return self._list_runs(path, query, runs, "actions/list-workflow-runs")
            if method == "POST" and m[2] == "/dispatches":
                return self._dispatch(wf, body)
        return 404, {"message": "Not Found", "documentation_url": DOCS}, {}, True

    def _list_runs(
        self,
        path: str,
        query: dict[str, str],
        runs: list[dict[str, Any]],
        op: str = "actions/list-workflow-runs-for-repo",
    ) -> tuple[int, Any, dict[str, str], bool]:
        for key in ("head_sha", "event"):
            if key in query:
                runs = [r for r in runs if r[key] == query[key]]
        if "branch" in query:
            runs = [r for r in runs if r["head_branch"] == query["branch"]]
        runs = sorted(runs, key=lambda r: (r["created_at"], r["id"]), reverse=True)
        page, links = self._page(path, query, runs)
        return 200, (op, {"total_count": len(runs), "workflow_runs": page}), links, True

    def _page(
        self, path: str, query: dict[str, str], items: list[Any]
    ) -> tuple[list[Any], dict[str, str]]:
        per_page = min(int(query.get("per_page", "30")), 100)
        page = int(query.get("page", "1"))
        chunk = items[(page - 1) * per_page : page * per_page]
        last = max(1, -(-len(items) // per_page))
        links = []
        keep = {k: v for k, v in query.items() if k != "page"}
        qs = "&".join(f"{k}={v}" for k, v in keep.items())
        if page < last:
            links.append(f'<{self.base}{path}?{qs}&page={page + 1}>; rel="next"')
            links.append(f'<{self.base}{path}?{qs}&page={last}>; rel="last"')
        return chunk, ({"Link": ", ".join(links)} if links else {})

    def _advance(self, run: dict[str, Any]) -> None:
        steps = self.progress.get(run["id"])
        if steps:
            run["status"] = steps.pop(0)
            if run["status"] == "completed":
                run["conclusion"] = self.dispatch_conclusion
                run["updated_at"] = iso(time.time())

    def _dispatch(self, wf: dict[str, Any], body: Any) -> tuple[int, Any, dict[str, str], bool]:
        ok = (
            isinstance(body, dict)
            and isinstance(body.get("ref"), str)
            and isinstance(body.get("inputs", {}), dict)
            and len(body.get("inputs", {})) <= 25
            and set(body) <= {"ref", "inputs", "return_run_details"}
        )
        if not ok:
            return (
                422,
                ("validation-error", {"message": "Invalid request", "documentation_url": DOCS}),
                {},
                True,
            )
        if self.on_dispatch is not None:
            self.on_dispatch(body)
        if not self.dispatch_creates_run:
            return 204, None, {}, True
        self._next_id += 1
        rid = self._next_id
        file = wf["path"].rsplit("/", 1)[-1]
        run = self.add_run(
            rid,
            "d" * 40,
            workflow=file,
            status="queued",
            conclusion=None,
            created=iso(time.time()),
            event="workflow_dispatch",
            branch=body["ref"],
            number=rid - 9000,
        )
        self.progress[rid] = ["queued", "in_progress", "completed"]
        if body.get("return_run_details"):
            return (
                200,
                (
                    "actions/create-workflow-dispatch",
                    {"workflow_run_id": rid, "run_url": run["url"], "html_url": run["html_url"]},
                ),
                {},
                True,
            )
        return 204, None, {}, True

    def validate(self, status: int, body: Any, checked: bool) -> Any:
        """The JSON to send; records schema violations of what the stub is about to send."""
        if isinstance(body, tuple):
            operation, payload = body
        else:
            operation, payload = ("error" if status >= 400 else ""), body
        if checked and payload is not None and operation:
            if operation == "workflows":
                errs = [
                    e
                    for wf in payload["workflows"]
                    for e in self.schemas.errors("actions/get-workflow", wf)
                ]
            else:
                errs = self.schemas.errors(operation, payload)
            self.errors += errs
        return payload


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
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = "<not json>"
        headers = {k.lower(): v for k, v in self.headers.items()}
        stub = self.server.stub
        status, payload, extra, checked = stub.answer(self.command, url.path, query, headers, body)
        payload = stub.validate(status, payload, checked)
        data = (
            b""
            if payload is None
            else (payload if isinstance(payload, bytes) else json.dumps(payload).encode())
        )
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("X-RateLimit-Limit", "5000")
        if "x-ratelimit-remaining" not in {k.lower() for k in extra}:
            self.send_header("X-RateLimit-Remaining", str(stub.rate_remaining))
            self.send_header("X-RateLimit-Reset", str(int(time.time()) + 3600))
        for key, value in extra.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _serve


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    stub: GitHubStub


@contextmanager
def serve(stub: GitHubStub) -> Iterator[str]:
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
