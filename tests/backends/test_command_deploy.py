"""CommandDeployer runs a real command: substitution, environment, exit codes, timeouts."""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest
from _fixtures_data import context

from console.backends.command_deploy import CommandDeployer, last_line
from console.plugins.options import CommandDeployConfig
from console.ports import BackendError, Deployer, Unreachable

PY = sys.executable


def deployer(tmp_path: Path, command: list[str], timeout: float = 10.0) -> CommandDeployer:
    cfg = CommandDeployConfig(command=command, timeout_seconds=timeout)
    return CommandDeployer(cfg, context(tmp_path))


def script(tmp_path: Path, name: str, body: str) -> Path:
    path = tmp_path / name
    path.write_text(f"#!{PY}\n{body}")
    path.chmod(0o755)
    return path


async def test_substitutes_per_element_and_sets_env(tmp_path: Path) -> None:
    record = tmp_path / "record.json"
    script(
        tmp_path,
        "deploy.py",
        "import json, os, sys\n"
        f"json.dump({{'argv': sys.argv[1:], 'cwd': os.getcwd(), 'env': {{k: v for k, v in os.environ.items() if k.startswith('CD4ML_')}}}}, open({str(record)!r}, 'w'))\n"
        "print('rolling out'); print('deployed https://ci/run/7'); print()\n",
    )
    dep = deployer(
        tmp_path, ["./deploy.py", "--model={model}", "{version}", "{stage};rm -rf /", "{actor}"]
    )
    assert isinstance(dep, Deployer) and dep.name == "command-deploy"
    result = await dep.deploy("churn", "v1.2.0", "prod", actor="ada from 10.0.0.1")
    assert result == "deployed https://ci/run/7"
    seen = json.loads(record.read_text())
    assert seen["argv"] == ["--model=churn", "v1.2.0", "prod;rm -rf /", "ada from 10.0.0.1"]
    assert seen["cwd"] == str(tmp_path)
    deploy_env = {
        k: v
        for k, v in seen["env"].items()
        if k in {"CD4ML_MODEL", "CD4ML_VERSION", "CD4ML_STAGE", "CD4ML_ACTOR"}
    }
    assert deploy_env == {
        "CD4ML_MODEL": "churn",
        "CD4ML_VERSION": "v1.2.0",
        "CD4ML_STAGE": "prod",
        "CD4ML_ACTOR": "ada from 10.0.0.1",
    }
    assert "executable" in await dep.check()


async def test_silent_success_has_a_default_message(tmp_path: Path) -> None:
    dep = deployer(tmp_path, [PY, "-c", "pass"])
    assert await dep.deploy("m", "v1", "prod", actor="a") == "deploy command succeeded"


async def test_non_zero_exit_names_code_and_last_stderr_line(tmp_path: Path) -> None:
    code = "import sys; print('out'); sys.stderr.write('first\\nkubectl: forbidden\\n\\n'); sys.exit(3)"
    dep = deployer(tmp_path, [PY, "-c", code])
    with pytest.raises(BackendError) as err:
        await dep.deploy("m", "v1", "prod", actor="a")
    assert type(err.value) is BackendError
    assert err.value.message == "deploy command exited 3: kubectl: forbidden"


async def test_timeout_kills_the_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "child.pid"
    code = (
        "import subprocess, sys, time\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        f"open({str(pidfile)!r}, 'w').write(str(child.pid))\n"
        "time.sleep(60)\n"
    )
    dep = deployer(tmp_path, [PY, "-c", code], timeout=1.0)
    started = time.monotonic()
    with pytest.raises(Unreachable, match=r"timed out after 1s; the outcome is unknown"):
        await dep.deploy("m", "v1", "prod", actor="a")
    assert time.monotonic() - started < 5
    child = int(pidfile.read_text())
    for _ in range(50):  # the grandchild went with the group
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        if Path(f"/proc/{child}/stat").read_text().split()[2] == "Z":
            break
        time.sleep(0.05)
    else:
        pytest.fail("the deploy command's child survived the timeout")


async def test_missing_program(tmp_path: Path) -> None:
    dep = deployer(tmp_path, ["no-such-deploy-tool-xyz", "{model}"])
    with pytest.raises(Unreachable, match="not an executable"):
        await dep.check()
    with pytest.raises(Unreachable, match="could not be started"):
        await dep.deploy("m", "v1", "prod", actor="a")
    plain = tmp_path / "deploy.sh"
    plain.write_text("#!/bin/sh\n")
    with pytest.raises(Unreachable):
        await deployer(tmp_path, ["./deploy.sh"]).check()


def test_empty_command_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BackendError, match="empty"):
        deployer(tmp_path, [])


def test_last_line() -> None:
    assert last_line(b"a\nb\x1b[31m\n  \n") == "b [31m"
    assert last_line(b"") == ""
    assert len(last_line(b"x" * 1000)) == 300
