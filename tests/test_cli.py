"""The CLI as scripts and people use it: exit codes, messages, --json shapes, on the real demo."""

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from console.demo.build import build_demo
from console.demo.run import set_metrics_port
from console.demo.server import ModelServer


def run(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {**os.environ, "CD4ML_LOG_FILE": os.devnull, **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "console", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=full_env,
        timeout=90,
        check=False,
    )


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "ws"
    build_demo(path, seed=7)  # at today's date: the CLI below runs on the system clock
    set_metrics_port(path / "cd4ml-console.toml", 9)  # nothing listens on the discard port
    return path


def test_help_is_fast_path_without_heavy_imports() -> None:
    code = (
        "import sys\n"
        "from console.cli.group import cli\n"
        "try:\n    cli(['--help'], prog_name='cd4ml-console')\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('textual', 'httpx', 'git', 'pydantic', 'prometheus_client', 'shutil', 'pathlib') if m in sys.modules]\n"
        "print('HEAVY', heavy)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert "HEAVY []" in out.stdout
    for command in ("status", "versions", "doctor", "plugins", "demo"):
        assert command in out.stdout


def test_help_wraps_to_the_terminal_width() -> None:
    narrow = run("--help", env={"COLUMNS": "60"}).stdout.splitlines()
    wide = run("--help", env={"COLUMNS": "200"}).stdout.splitlines()
    assert max(map(len, narrow)) <= 58 < max(map(len, wide)) <= 78  # click's 80-column cap


def test_help_never_cuts_a_command_summary_mid_sentence() -> None:
    text = run("--help", env={"COLUMNS": "80"}).stdout
    commands = text.split("Commands:", 1)[1]
    assert "..." not in commands
    assert "executes it." in commands  # approve's first sentence, whole, wrapped


PIPED = [
    ("--help",),
    ("plugins",),
    ("doctor",),
    ("status",),
    ("status", "--json"),
    ("versions", "fraud-detector"),
    ("audit",),
    ("audit", "--json"),
    ("requests",),
]


@pytest.mark.parametrize("args", PIPED, ids=" ".join)
def test_a_reader_that_goes_away_ends_the_command_quietly(
    demo: Path, args: tuple[str, ...]
) -> None:
    """`cd4ml-console doctor | head -3`: no "internal error: BrokenPipeError", no traceback,
    and the exit status of a command killed by SIGPIPE (141), as `head` users expect."""
    read, write = os.pipe()
    os.close(read)  # the reader has gone before the first line: every write fails
    try:
        done = subprocess.run(
            [sys.executable, "-m", "console", "-w", str(demo), *args],
            stdout=write, stderr=subprocess.PIPE, text=True, timeout=60, check=False,
            env={**os.environ, "CD4ML_LOG_FILE": os.devnull},
        )  # fmt: skip
    finally:
        os.close(write)
    assert done.stderr == ""
    assert done.returncode == 141


def test_open_starts_the_tui_on_the_model_and_version(
    demo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from click.testing import CliRunner

    import console.tui.app
    from console.cli.group import cli

    seen: dict[str, object] = {}

    def run_tui(located: object, **kw: object) -> int:
        seen.update(kw, config=getattr(located, "path", None))
        return 0

    monkeypatch.setattr(console.tui.app, "run_tui", run_tui)
    monkeypatch.setenv("CD4ML_LOG_FILE", os.devnull)
    result = CliRunner().invoke(cli, ["-w", str(demo), "open", "fraud", "1.3.0"])
    assert result.exit_code == 0, result.output
    assert seen["model"] == "fraud" and seen["version"] == "1.3.0"
    assert seen["config"] == demo / "cd4ml-console.toml"
    result = CliRunner().invoke(cli, ["-w", str(demo), "open"])
    assert result.exit_code == 2 and "Missing argument 'MODEL'" in result.output


def test_outside_any_repo_points_to_demo_and_exits_2(tmp_path: Path) -> None:
    out = run(
        env={"XDG_CONFIG_HOME": str(tmp_path), "GIT_CEILING_DIRECTORIES": str(tmp_path)},
        cwd=tmp_path,
    )
    assert out.returncode == 2
    assert "cd4ml-console demo" in out.stderr and "Traceback" not in out.stderr


def test_bad_config_names_file_and_key_without_traceback(tmp_path: Path) -> None:
    cfg = tmp_path / "cd4ml-console.toml"
    cfg.write_text("[policy.stages.production]\nrequired_approvals = 'two'\n")
    out = run("-w", str(tmp_path), "status")
    assert out.returncode == 2
    assert str(cfg) in out.stderr
    assert "policy.stages.production.required_approvals" in out.stderr
    assert "Traceback" not in out.stderr


def test_status_json_on_the_demo_shows_every_model_and_stage(demo: Path) -> None:
    out = run("-w", str(demo), "status", "--json")
    doc = json.loads(out.stdout)
    assert doc["schema"] == "cd4ml-console/status/v1"
    assert [m["name"] for m in doc["models"]] == [
        "fraud-detector",
        "churn-predictor",
        "price-recommender",
    ]
    for model in doc["models"]:
        for stage in ("staging", "production"):
            s = model["stages"][stage]
            assert s["version"].startswith("v")
            assert len(s["commit"]) == 40 and s["data_version"] and s["metrics"]
            assert s["ci"] in {"success", "failure"}
    price = next(m for m in doc["models"] if m["name"] == "price-recommender")
    assert price["stages"]["production"]["version"] == "v1.2.1"  # the rollback
    # The metrics server is down: said in words, the rest still shown, exit code 1.
    assert out.returncode == 1
    assert {e["section"] for e in doc["errors"]} == {"metrics"}
    assert "127.0.0.1:9" in doc["errors"][0]["message"]


def test_status_text_and_single_model(demo: Path) -> None:
    out = run("-w", str(demo), "status", "churn-predictor")
    assert "churn-predictor" in out.stdout and "fraud-detector" not in out.stdout
    # backend errors go to stderr (docs/cli.md): the table on stdout stays clean for pipes
    assert "! metrics (churn-predictor)" in out.stderr and "!" not in out.stdout
    missing = run("-w", str(demo), "status", "no-such-model")
    assert missing.returncode == 2 and "no model named 'no-such-model'" in missing.stderr


def test_status_with_live_metrics_exits_0(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    build_demo(ws, seed=7)  # at today's date: the CLI below runs on the system clock
    with ModelServer(ws, port=0, rps=20.0) as server:
        assert server.wait_ready(10)
        set_metrics_port(ws / "cd4ml-console.toml", server.port)
        time.sleep(1.0)  # some traffic
        out = run("-w", str(ws), "status", "--json")
    assert out.returncode == 0, out.stdout + out.stderr
    doc = json.loads(out.stdout)
    fraud = doc["models"][0]
    assert fraud["health"]["version"] == fraud["stages"]["production"]["version"]
    assert fraud["health"]["traffic_rps"] is not None


def test_versions_json_lists_every_version_newest_first(demo: Path) -> None:
    out = run("-w", str(demo), "versions", "price-recommender", "--json")
    doc = json.loads(out.stdout)
    assert out.returncode == 0, out.stderr
    names = [v["version"] for v in doc["versions"]]
    assert names[0] == "v1.3.0" and names[-1] == "v1.0.0"
    first = doc["versions"][0]
    assert first["created_by"] and first["commit"] and first["metrics"] and first["ci"] != "none"
    assert "production" in next(v for v in doc["versions"] if v["version"] == "v1.2.1")["stages"]


def test_doctor_says_what_works_and_what_does_not(demo: Path) -> None:
    out = run("-w", str(demo), "doctor")
    assert out.returncode == 1
    lines = {
        line.split()[1]: line for line in out.stdout.splitlines() if line[:4] in ("ok  ", "FAIL")
    }
    for kind in ("code", "registry", "data", "ci", "audit"):
        assert lines[kind].startswith("ok"), out.stdout
    assert lines["metrics"].startswith("FAIL") and "127.0.0.1:9" in lines["metrics"]


def test_zero_config_in_a_plain_gto_repo(demo: Path, tmp_path: Path) -> None:
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(demo), str(clone)], check=True)
    out = run("status", "--json", cwd=clone, env={"XDG_CONFIG_HOME": str(tmp_path)})
    doc = json.loads(out.stdout)
    assert out.returncode == 0, out.stderr  # no metrics configured: nothing failed
    assert {m["name"] for m in doc["models"]} == {
        "fraud-detector",
        "churn-predictor",
        "price-recommender",
    }
    assert all(m["stages"]["production"]["version"] for m in doc["models"])


def wait_for_shadow(url: str, model: str, requests: int, timeout: float = 30.0) -> None:
    """Until the model server counted ``requests`` mirrored decisions for ``model``."""
    from prometheus_client.parser import text_string_to_metric_families

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as response:
            text = response.read().decode()
        seen = sum(
            s.value
            for f in text_string_to_metric_families(text)
            for s in f.samples
            if s.name == "model_shadow_decisions_total" and s.labels["model"] == model
        )
        if seen >= requests:
            return
        time.sleep(0.2)
    raise AssertionError(f"{model}: fewer than {requests} mirrored requests in {timeout}s")


def test_demo_waiting_request_can_be_approved_by_another_user(tmp_path: Path) -> None:
    """The new-user story: approve the seeded request, production moves, the audit verifies."""
    ws = tmp_path / "ws"
    build_demo(ws, seed=7)  # at today's date: the CLI below runs on the system clock
    pending = json.loads(run("-w", str(ws), "requests", "--json").stdout)
    assert [r["id"] for r in pending["requests"]] == ["req-demo-0001"]
    argv = ("-w", str(ws), "approve", "fraud-detector", "v2.0.0", "--to", "production")
    approve = run(*argv, "--comment", "ok", "--json")
    assert approve.returncode == 0, approve.stdout + approve.stderr
    status = json.loads(run("-w", str(ws), "status", "fraud-detector", "--json").stdout)
    assert status["models"][0]["stages"]["production"]["version"] == "v2.0.0"
    verify = run("-w", str(ws), "audit", "verify")
    assert verify.returncode == 0 and "anchored" in verify.stdout


def test_versions_json_remembers_the_rollback(demo: Path) -> None:
    out = run("-w", str(demo), "versions", "price-recommender", "--json")
    rows = {v["version"]: v for v in json.loads(out.stdout)["versions"]}
    back = rows["v1.3.0"]["rolled_back"]
    assert back["stage"] == "production" and back["to_version"] == "v1.2.1"
    assert back["by"] == "erin" and "INC-2041" in back["reason"] and back["source"] == "audit"
    assert rows["v1.2.1"]["rolled_back"] is None
    text = run("-w", str(demo), "versions", "price-recommender").stdout
    assert "↩ v1.3.0 rolled back from production to v1.2.1" in text


def test_health_without_metrics_says_unknown_and_exits_1(demo: Path) -> None:
    out = run("-w", str(demo), "health", "price-recommender", "--json")
    assert out.returncode == 1, out.stdout + out.stderr
    stages = json.loads(out.stdout)["stages"]  # down: whether staging has data is unknown too
    assert [(s["stage"], s["verdict"]) for s in stages] == [
        ("staging", "unknown"),
        ("production", "unknown"),
    ]
    reason = stages[1]["reasons"][0]
    assert reason.startswith("metrics down: ") and "127.0.0.1:9" in reason


def test_health_and_watch_on_the_served_demo(tmp_path: Path) -> None:
    """The INC-2041 story: v1.3.0's shadow figures breach the SLOs; production is ok."""
    ws = tmp_path / "ws"
    build_demo(ws, seed=7)
    w = ("-w", str(ws))
    with ModelServer(ws, "127.0.0.1", 0, reload_seconds=0.2, rps=80.0) as server:
        assert server.wait_ready(10)
        set_metrics_port(ws / "cd4ml-console.toml", server.port)
        wait_for_shadow(server.url, "price-recommender", 120)
        everything = run(*w, "health")
        prod = run(*w, "health", "price-recommender", "--stage", "production", "--json")
        status = json.loads(run(*w, "status", "price-recommender", "--json").stdout)
        # stops at the first breach: ~100 mirrored requests after the watch began
        breach = run(*w, "watch", "price-recommender", "--stage", "staging", "--for", "45s",
                     "--interval", "2s")  # fmt: skip
        compared = run(*w, "compare", "price-recommender", "v1.3.0", "--json")
    assert everything.returncode == 4, everything.stdout + everything.stderr
    line = next(x for x in everything.stdout.splitlines() if "price-recommender" in x and
                "staging" in x)  # fmt: skip
    assert "v1.3.0" in line and "BREACH" in line and "> 250 ms" in line
    assert prod.returncode == 0, prod.stdout
    assert json.loads(prod.stdout)["stages"][0]["verdict"] == "ok"
    model = status["models"][0]
    assert model["health"]["verdict"] == "ok" and model["health"]["reasons"]
    assert model["health_by_stage"]["staging"]["verdict"] == "breach"
    assert breach.returncode == 4, breach.stdout + breach.stderr
    assert "price-recommender staging v1.3.0: breach: p95" in breach.stdout
    assert "next: cd4ml-console rollback price-recommender --stage staging" in breach.stdout
    doc = json.loads(compared.stdout)  # the compare screen's LIVE section, as JSON
    [cand] = doc["candidates"]
    assert doc["live_base"]["version"] == "v1.2.1" and doc["live_base"]["verdict"] == "ok"
    assert cand["live"]["stage"] == "staging" and cand["live"]["verdict"] == "breach"
    assert cand["live"]["shadow"]["compared"] > 0 and cand["live"]["shadow"]["psi"] is not None
    assert cand["rolled_back"]["by"] == "erin"
