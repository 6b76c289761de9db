"""Find, read and validate the config; every failure is a ConfigError naming file and key."""

from __future__ import annotations

import os
import subprocess
import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from console.config.model import ConsoleConfig

CONFIG_NAME = "cd4ml-console.toml"
DOCS_HINT = "see docs/configuration.md"


class ConfigError(Exception):
    """The config can not be used. ``str()`` names the file, the key path and what to fix."""

    exit_code = 2


class NoWorkspace(ConfigError):
    """No config file and not inside a git repository."""


class EnvOverrides(BaseSettings):
    """Presentation settings the environment may override (never policy, roles or backends)."""

    model_config = SettingsConfigDict(env_prefix="CD4ML_", extra="ignore")

    theme: str | None = None


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


def _key_path(loc: tuple[Any, ...]) -> str:
    parts: list[str] = []
    for item in loc:
        if isinstance(item, int):
            parts.append(f"[{item}]")
        else:
            parts.append(("." if parts else "") + str(item))
    return "".join(parts) or "(top level)"


def format_validation_error(source: str, err: ValidationError) -> str:
    lines = [f"{source}: invalid configuration ({err.error_count()} problem(s)):"]
    for e in err.errors():
        msg = e["msg"]
        if e["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling; " + DOCS_HINT + ")"
        elif e["type"] == "missing":
            msg = "required key is missing"
        value = e.get("input")
        shown = (
            ""
            if e["type"] in ("missing", "extra_forbidden") or isinstance(value, dict)
            else f" (got {value!r})"
        )
        lines.append(f"  {_key_path(tuple(e['loc']))}: {msg}{shown}")
    return "\n".join(lines)


def parse_config(text: str, source: Path | None) -> ConsoleConfig:
    """Parse TOML text into a validated config (plugin options are checked by the workspace)."""
    label = str(source) if source else "<config>"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{label}: not valid TOML: {exc}") from None
    try:
        config = ConsoleConfig.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(format_validation_error(label, exc)) from None
    updates: dict[str, Any] = {"source": source}
    env = EnvOverrides()
    if env.theme:
        updates["ui"] = config.ui.model_copy(update={"theme": env.theme})
    return config.model_copy(update=updates)


def read_config_file(path: Path) -> ConsoleConfig:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: can not read config file: {exc}") from None
    return parse_config(text, path.resolve())


def zero_config(root: Path) -> ConsoleConfig:
    """The embedded backends on the git repo at ``root``, no file needed."""
    config = ConsoleConfig(source=None)
    ws = config.workspace.model_copy(update={"path": root, "name": root.name})
    updates: dict[str, Any] = {"workspace": ws}
    env = EnvOverrides()
    if env.theme:
        updates["ui"] = config.ui.model_copy(update={"theme": env.theme})
    return config.model_copy(update=updates)


def load_config(config_file: Path | None = None, workspace: Path | None = None) -> ConsoleConfig:
    """Resolve the config the way the docs promise.

    1. ``--config FILE``; 2. ``cd4ml-console.toml`` in ``-w DIR`` or the current folder;
    3. the user config dir; 4. zero config on the git repo at ``-w DIR`` or the current folder.
    """
    if config_file is not None:
        return read_config_file(config_file)
    here = (workspace or Path.cwd()).resolve()
    if workspace is not None and not here.is_dir():
        raise ConfigError(f"{here}: workspace folder does not exist")
    local = here / CONFIG_NAME
    if local.is_file():
        return read_config_file(local)
    if workspace is None:
        user = user_config_path()
        if user.is_file():
            return read_config_file(user)
    root = find_git_root(here)
    if root is not None:
        return zero_config(root)
    raise NoWorkspace(
        f"No workspace here: {here} is not inside a git repository and there is no "
        f"{CONFIG_NAME} (looked in {here} and {user_config_path()}).\n"
        "Try the demo:    cd4ml-console demo\n"
        "Or point at one: cd4ml-console -w PATH/TO/REPO   (or --config FILE)\n"
        f"Configuration:   {DOCS_HINT}"
    )


def config_label(config: ConsoleConfig) -> str:
    return str(config.source) if config.source else f"zero config on {config.root}"


def is_truthy_env(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in {"1", "true", "yes", "on"}
