"""Where the config comes from, decided without pydantic: the TUI's first frame needs only the
file's location and theme; validation runs after it (console.config.load)."""

from __future__ import annotations

import os
import re
import subprocess
import tomllib
from dataclasses import dataclass
from pathlib import Path

CONFIG_NAME = "cd4ml-console.toml"
DOCS_HINT = "see docs/configuration.md"


class ConfigError(Exception):
    """The config can not be used. ``str()`` names the file, the key path and what to fix."""

    exit_code = 2


class NoWorkspace(ConfigError):
    """No config file and not inside a git repository."""


def env_theme() -> str | None:
    """The theme the environment asks for (``CD4ML_THEME``). Only presentation may come from
    the environment: policy, roles and backends come from the file alone."""
    return os.environ.get("CD4ML_THEME", "").strip() or None


def user_config_path() -> Path:
    from platformdirs import user_config_dir

    return Path(user_config_dir("cd4ml-console")) / CONFIG_NAME


def find_git_root(start: Path) -> Path | None:
    """The top of the git work tree containing ``start``, or None."""
    start = start.resolve()
    for candidate in (start, *start.parents):
        if (candidate / ".git").exists():
            return candidate
    try:
        out = subprocess.run(
            ["git", "-C", str(start), "rev-parse", "--show-toplevel"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    return Path(out.stdout.strip()) if out.returncode == 0 and out.stdout.strip() else None


def git_common_dir(root: Path) -> Path | None:
    """The git directory shared by every work tree of the repository at ``root``, or None."""
    try:
        out = subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--path-format=absolute", "--git-common-dir"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    text = out.stdout.strip()
    return Path(text) if out.returncode == 0 and text else None


@dataclass(frozen=True)
class Located:
    """A config file to read, or (``path`` None) zero config on the git repo at ``root``."""

    path: Path | None
    root: Path | None = None

    @property
    def where(self) -> Path:
        """The config file, or the repo of a zero-config workspace: what identifies it."""
        where = self.path.resolve() if self.path is not None else self.root
        assert where is not None
        return where


def locate_config(config_file: Path | None = None, workspace: Path | None = None) -> Located:
    """1. ``--config FILE``; 2. ``cd4ml-console.toml`` in ``-w DIR`` or the current folder;
    3. the user config dir (without ``-w``); 4. zero config on the git repo there.
    Raises NoWorkspace (with the way out) when none applies."""
    if config_file is not None:
        return Located(config_file)
    here = (workspace or Path.cwd()).resolve()
    if workspace is not None and not here.is_dir():
        raise ConfigError(f"{here}: workspace folder does not exist")
    local = here / CONFIG_NAME
    if local.is_file():
        return Located(local)
    if workspace is None:
        user = user_config_path()
        if user.is_file():
            return Located(user)
    root = find_git_root(here)
    if root is not None:
        return Located(None, root)
    raise NoWorkspace(
        f"No workspace here: {here} is not inside a git repository and there is no "
        f"{CONFIG_NAME} (looked in {here} and {user_config_path()}).\n"
        "Try the demo:    cd4ml-console demo\n"
        "Or point at one: cd4ml-console -w PATH/TO/REPO   (or --config FILE)\n"
        f"Configuration:   {DOCS_HINT}"
    )


_HEADER = re.compile(r"^\s*\[", re.MULTILINE)
_UI_HEADER = re.compile(r"^\s*\[\s*ui\s*\]\s*(#.*)?$", re.MULTILINE)
_UI_KEY = re.compile(r"^\s*ui\s*[.=]")


def _ui_part(text: str) -> str:
    """Only what can set ``ui.theme`` (the ``[ui]`` table and top-level ``ui`` keys): a config
    listing a thousand models is otherwise parsed twice before the first frame."""
    first = _HEADER.search(text)
    top = text[: first.start()] if first else text
    part = [line for line in top.splitlines() if _UI_KEY.match(line)]
    table = _UI_HEADER.search(text)
    if table is not None:
        end = _HEADER.search(text, table.end())
        part.append(text[table.start() : end.start() if end else len(text)])
    return "\n".join(part)


def peek_theme(located: Located) -> str | None:
    """The theme the environment or the file asks for, read cheaply (None: default or unreadable;
    full validation reports any problem with the file later)."""
    if theme := env_theme():
        return theme
    if located.path is None:
        return None
    try:
        data = tomllib.loads(_ui_part(located.path.read_text(encoding="utf-8")))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return None
    ui = data.get("ui")
    theme = ui.get("theme") if isinstance(ui, dict) else None
    return theme if isinstance(theme, str) else None
