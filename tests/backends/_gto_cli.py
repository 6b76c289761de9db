"""Drive the real ``gto`` CLI from tests: write with a fixed clock, read its JSON.

The CLI is found at $CD4ML_GTO, else at .venv-gto/bin/gto in the repository (``make tools``).
Writes run gto's click app in one process of gto's own interpreter with the clock set per step:
each CLI start costs ~0.7 s, and gto stamps tags with the current second, so real-time writes
would make a test slow and same-second ties possible where a test does not want them.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
GTO = Path(os.environ.get("CD4ML_GTO") or ROOT / ".venv-gto" / "bin" / "gto")

needs_gto = pytest.mark.skipif(
    not (GTO.is_file() and os.access(GTO, os.X_OK)),
    reason=f"the gto CLI is not installed at {GTO}: run `make tools` or set CD4ML_GTO",
)


def gto_python() -> str | None:
    """The interpreter of the gto script (its shebang), if it can import gto."""
    try:
        first = GTO.read_text().splitlines()[0]
    except (OSError, IndexError):
        return None
    python = first[2:].strip().split()[0] if first.startswith("#!") else ""
    if not python or not os.access(python, os.X_OK):
        return None
    probe = subprocess.run([python, "-c", "import gto.cli"], capture_output=True, check=False)
    return python if probe.returncode == 0 else None


DRIVER = r"""
import json, os, sys, time
from gto.cli import app
for step in json.load(sys.stdin):
    # scmrepo may write the tag with dulwich (stamps time.time()), pygit2 (declines when
    # GIT_COMMITTER_DATE is set) or GitPython (runs git, which honours it).
    time.time = lambda at=step["at"]: float(at)
    os.environ["GIT_COMMITTER_DATE"] = f"{step['at']} +0000"
    os.environ["GIT_COMMITTER_NAME"] = step["actor"]
    os.environ["GIT_COMMITTER_EMAIL"] = step["actor"].lower() + "@example.com"
    try:
        code = app.main(step["args"], prog_name="gto", standalone_mode=False)
    except SystemExit as exc:
        code = exc.code
    if code:  # click returns the exit code when not in standalone mode
        sys.exit("gto " + " ".join(step["args"]) + f" failed ({code})")
"""


READER = r"""
import contextlib, io, json, sys
from gto.cli import app
out = []
for args in json.load(sys.stdin):
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        code = app.main(args, prog_name="gto", standalone_mode=False)
    if code:
        sys.exit("gto " + " ".join(args) + f" failed ({code})")
    out.append(json.loads(buf.getvalue()))
print(json.dumps(out))
"""


def run_gto_python(repo: Any, script: str, payload: object) -> str:
    python = gto_python()
    if python is None:
        pytest.skip(f"can not find the Python interpreter of {GTO} to drive gto's CLI")
    proc = subprocess.run(
        [python, "-c", script],
        input=json.dumps(payload).encode(),
        cwd=repo.path,
        env=repo.env,
        capture_output=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-2000:] + proc.stdout.decode()[-2000:]
    return proc.stdout.decode()


def gto_write(repo: Any, steps: list[tuple[int, str, list[str]]]) -> None:
    """Run gto CLI commands in order: (unix time, actor, argv) each."""
    run_gto_python(repo, DRIVER, [{"at": at, "actor": a, "args": args} for at, a, args in steps])


def gto_reads(repo: Any, *commands: list[str]) -> list[Any]:
    """The JSON output of several read-only gto CLI commands, run in one process."""
    return json.loads(run_gto_python(repo, READER, [[*c, "--json"] for c in commands]))


def gto_json(repo: Any, *args: str) -> Any:
    """One run of the gto executable itself."""
    proc = subprocess.run(
        [str(GTO), *args, "--json"],
        cwd=repo.path,
        env=repo.env,
        capture_output=True,
        check=False,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr.decode()[-2000:]
    return json.loads(proc.stdout)
