"""Notifications against a loopback receiver: every release event that people wait for is
told with its fields; a receiver that hangs or fails never holds nor undoes the action, and
leaves a warning in the result and a note in the audit log."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from console.backends.notify_command import CommandNotifier
from console.backends.notify_webhook import WebhookNotifier
from console.domain import AuditEvent
from console.plugins import BackendContext
from console.plugins.options import CommandNotifyConfig, WebhookNotifyConfig
from console.services.notify import kind_of
from console.services.release import Refused
from tests.release.fakes import T0, World

TOKEN = "xoxb-0123456789-SECRETSECRET"


class Receiver:
    """An incoming webhook on loopback: ``mode`` is ok, 500 or hang."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.bodies: list[dict[str, Any]] = []
        self.paths: list[str] = []
        self.release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                data = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.paths.append(self.path)
                if receiver.mode == "hang":
                    receiver.release.wait(30)
                receiver.bodies.append(json.loads(data))
                status = 500 if receiver.mode == "500" else 200
                try:
                    self.send_response(status)
                    self.end_headers()
                    self.wfile.write(b"boom: " + TOKEN.encode() if status == 500 else b"ok")
                except (BrokenPipeError, ConnectionResetError):  # the client gave up waiting
                    pass

            def log_message(self, *args: Any) -> None:
                return None

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def events(self) -> list[str]:
        return [b["event"] for b in self.bodies]

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.stop()


def ctx(tmp: Path) -> BackendContext:
    return BackendContext(workspace=tmp, state_dir=tmp, config=None, timeout=5.0)


def world_with(notifier: Any, approvals: int = 1) -> World:
    w = World(approvals=approvals)
    w.ws.backends["notify"] = notifier
    return w


def webhook(url: str, tmp: Path, **options: Any) -> WebhookNotifier:
    return WebhookNotifier(WebhookNotifyConfig(url=url, use_keyring=False, **options), ctx(tmp))


async def test_each_release_event_is_notified_with_its_fields(
    receiver: Receiver, tmp_path: Path
) -> None:
    w = world_with(webhook(receiver.url, tmp_path))
    asked = await w.svc("dev").promote("m", "v1.1.0", "production", reason="auc +2 points")
    assert asked.status == "requested" and not asked.warnings
    done = await w.svc("rita").approve("m", "v1.1.0", "production", comment="lgtm")
    assert done.status == "executed" and not done.warnings
    assert receiver.events() == ["request", "approve", "execute"]
    first = receiver.bodies[0]
    for key in ("event", "model", "version", "stage", "actor", "request_id", "reason", "text"):
        assert key in first, key
    assert (first["model"], first["version"], first["stage"], first["actor"]) == (
        "m", "v1.1.0", "production", "dev",
    )  # fmt: skip
    assert first["request_id"] == "req-0001" and first["reason"] == "auc +2 points"
    assert first["text"] == (
        "[cd4ml] dev requests m v1.1.0 → production (req-0001), waiting for approval: auc +2 points"
    )
    assert receiver.bodies[2]["text"] == (
        "[cd4ml] production of m: v1.0.0 → v1.1.0 (promoted by rita) (req-0001)"
    )
    assert all("\n" not in b["text"] for b in receiver.bodies)

    back = await w.svc("sam").rollback("m", reason="INC-7 p95 doubled", confirmation="m")
    assert back.status == "executed"
    assert receiver.events()[-2:] == ["request", "rollback"]
    assert "rolled back: v1.1.0 → v1.0.0 (by sam)" in receiver.bodies[-1]["text"]

    # v1.1.0 was rolled back: promoting it again is acknowledged (services.incidents)
    await w.svc("dev").promote("m", "v1.1.0", "production", reason="again", ack_rolled_back=True)
    await w.svc("rita").reject("m", "v1.1.0", "production", comment="not today")
    assert receiver.events()[-2:] == ["request", "reject"]

    await w.svc("dev").promote(
        "m", "v1.1.0", "production", reason="third time", ack_rolled_back=True
    )
    w.registry.before_assign = lambda: w.registry.move("production", "v1.3.0", "erin")
    with pytest.raises(Refused, match=r"moved to v1\.3\.0"):
        await w.svc("rita").approve("m", "v1.1.0", "production")
    assert receiver.events()[-3:] == ["request", "approve", "conflict"]
    assert not [e for e in w.audit.rows if e.action == "note"]


async def test_an_expired_request_is_recorded_and_notified_once(
    receiver: Receiver, tmp_path: Path
) -> None:
    w = world_with(webhook(receiver.url, tmp_path))
    await w.svc("dev").promote("m", "v1.1.0", "production", reason="r")
    w.clock.advance(hours=200)  # the default request_ttl_hours is 168
    assert [v.state.value for v in await w.svc("vic").request_views("m")] == ["expired"]
    assert [e.action for e in w.audit.rows] == ["request"]  # reading writes nothing
    await w.svc("rita").promote("m", "v1.1.0", "production", reason="new try")
    await w.svc("sam").approve("m", "v1.1.0", "production")
    expiries = [e for e in w.audit.rows if e.action == "expire"]
    assert len(expiries) == 1 and expiries[0].actor == "rita"
    assert expiries[0].request_id == "req-0001" and "no decision within 168 h" in expiries[0].reason
    assert receiver.events() == ["request", "expiry", "request", "approve", "execute"]
    assert receiver.bodies[1]["text"].startswith(
        "[cd4ml] m v1.1.0 → production (req-0001) expired without a decision"
    )


@pytest.mark.parametrize(
    ("mode", "why"),
    [("hang", "did not answer within 0.5s"), ("500", "answered 500 Internal Server Error")],
)
async def test_a_failing_receiver_leaves_a_warning_and_a_note_and_the_action_done(
    receiver: Receiver, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, mode: str, why: str
) -> None:
    receiver.mode = mode
    monkeypatch.setenv("CD4ML_TEST_HOOK_TOKEN", TOKEN)
    hook = webhook(
        receiver.url + "/{token}", tmp_path, timeout_seconds=0.5, token_env="CD4ML_TEST_HOOK_TOKEN"
    )
    w = world_with(hook, approvals=0)
    result = await w.svc("dev").promote("m", "v1.1.0", "production", reason="r")
    assert result.status == "executed"
    assert w.registry.pointers["production"] == "v1.1.0"
    assert [e.action for e in w.audit.rows][:3] == ["request", "intent", "outcome"]
    assert len(result.warnings) == 2  # the request and the execute
    assert result.warnings[1].startswith(
        f"the execute notification was not delivered: webhook: {receiver.url}/{{token}} {why}"
    ), result.warnings
    notes = [e for e in w.audit.rows if e.action == "note"]
    assert [n.details["event"] for n in notes] == ["request", "execute"]
    assert notes[1].details["event_seq"] == 3 and notes[1].result == "failed"
    assert receiver.paths[0] == f"/hook/{TOKEN}"  # the token went where it belongs ...
    for text in (*result.warnings, *(n.reason for n in notes), repr(hook), await hook.check()):
        assert TOKEN not in text  # ... and nowhere else
    await hook.aclose()


async def test_an_unreachable_receiver_is_a_warning(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    hook = webhook(f"http://127.0.0.1:{port}/hook", tmp_path, timeout_seconds=0.5)
    w = world_with(hook)
    result = await w.svc("dev").promote("m", "v1.1.0", "production", reason="r")
    assert result.status == "requested"
    assert "can not be reached" in result.warnings[0]
    await hook.aclose()


async def test_the_command_notifier_gets_the_message_on_stdin(tmp_path: Path) -> None:
    out = tmp_path / "said.jsonl"
    cmd = CommandNotifier(CommandNotifyConfig(command=["sh", "-c", f"cat >> {out}"]), ctx(tmp_path))
    w = world_with(cmd, approvals=0)
    result = await w.svc("dev").promote("m", "v1.1.0", "production", reason="r")
    assert not result.warnings
    said = [json.loads(line) for line in out.read_text().splitlines()]
    assert [s["event"] for s in said] == ["request", "execute"]
    failing = CommandNotifier(
        CommandNotifyConfig(command=["sh", "-c", "echo no mail server >&2; exit 3"]),
        ctx(tmp_path),
    )
    w = world_with(failing)
    result = await w.svc("dev").promote("m", "v1.1.0", "production", reason="r")
    assert result.warnings == (
        "the request notification was not delivered: command-notify: notify command sh "
        "exited 3: no mail server",
    )


def _ev(action: str, result: str = "", **details: Any) -> AuditEvent:
    return AuditEvent(seq=1, at=T0, actor="a", action=action, result=result, details=details)


@pytest.mark.parametrize(
    ("event", "kind"),
    [
        (_ev("request", "pending"), "request"),
        (_ev("approve", "approved"), "approve"),
        (_ev("approve", "refused"), ""),
        (_ev("reject", "rejected"), "reject"),
        (_ev("cancel", "cancelled"), ""),
        (_ev("expire", "expired"), "expiry"),
        (_ev("intent", "pending", op="promote"), ""),
        (_ev("outcome", "executed", op="promote"), "execute"),
        (_ev("outcome", "executed", op="rollback"), "rollback"),
        (_ev("outcome", "executed", op="deploy"), ""),
        (_ev("outcome", "conflict", op="promote"), "conflict"),
        (_ev("outcome", "failed", op="promote"), ""),
        (_ev("promote", "conflict"), "conflict"),
        (_ev("note", "failed"), ""),
    ],
)
def test_only_decisions_and_outcomes_are_notified(event: AuditEvent, kind: str) -> None:
    assert kind_of(event) == kind


def test_a_webhook_url_with_another_placeholder_is_a_config_error() -> None:
    with pytest.raises(ValueError, match="only placeholder"):
        WebhookNotifyConfig(url="https://hooks.example/{channel}")
    with pytest.raises(ValueError, match="http"):
        WebhookNotifyConfig(url="ftp://hooks.example/x")


def test_the_cli_notifies_and_reports_a_failed_notification(
    receiver: Receiver, tmp_path: Path, run_cli: Any, act_as: Any
) -> None:
    from tests.release.conftest import make_workspace

    extra = f'\n[backends.notify]\ntype = "webhook"\nurl = "{receiver.url}"\ntimeout_seconds = 1\n'
    ws = make_workspace(tmp_path / "ws", extra=extra)
    w = ["-w", str(ws.path)]
    act_as("dev")
    asked = run_cli(*w, "promote", "m", "v1.1.0", "--to", "production", "--reason", "auc up")
    assert asked.exit_code == 0, asked.stderr
    assert receiver.events() == ["request"] and "warning" not in asked.stdout + asked.stderr
    receiver.mode = "500"
    act_as("rita")
    done = run_cli(*w, "approve", "m", "v1.1.0", "--to", "production", "--json")
    assert done.exit_code == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["status"] == "executed"
    assert [x.split(":")[0] for x in doc["warnings"]] == [
        "the approve notification was not delivered",
        "the execute notification was not delivered",
    ]
    log = json.loads(run_cli(*w, "audit", "m", "--json").stdout)["events"]
    assert [(e["action"], e["details"].get("event")) for e in log[-2:]] == [
        ("note", "approve"),
        ("note", "execute"),
    ]
    assert run_cli(*w, "audit", "verify").exit_code == 0
    doctor = run_cli(*w, "doctor")
    assert f"ok   notify    webhook        posts to {receiver.url} within 1s" in doctor.stdout
