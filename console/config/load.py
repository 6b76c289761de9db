"""Find, read and validate the config; every failure is a ConfigError naming file and key."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from console.config.locate import (
    CONFIG_NAME,
    DOCS_HINT,
    ConfigError,
    Located,
    NoWorkspace,
    env_theme,
    find_git_root,
    git_common_dir,
    locate_config,
    user_config_path,
)
from console.config.model import ConsoleConfig

__all__ = [
    "CONFIG_NAME",
    "ConfigError",
    "NoWorkspace",
    "config_label",
    "find_git_root",
    "load_config",
    "load_located",
    "parse_config",
    "read_config_file",
    "user_config_path",
    "zero_config",
]


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
    origin = label if "stages" in data else f"the default ({label} sets no stages)"
    updates: dict[str, Any] = {"source": source, "stages_origin": origin}
    if theme := env_theme():
        updates["ui"] = config.ui.model_copy(update={"theme": theme})
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
    """The embedded backends on the git repo at ``root``, no file needed; the stages are the
    ones its GTO registry uses (console.git.gto_stages)."""
    from console.git.gto_stages import repo_stages

    found = repo_stages(root)
    config = ConsoleConfig(
        source=None,
        stages=list(found.stages),
        production_stage=found.production,
        stages_origin=found.origin,
    )
    ws = config.workspace.model_copy(
        update={"path": root, "name": root.name, "state_dir": zero_config_state(root)}
    )
    updates: dict[str, Any] = {"workspace": ws}
    if theme := env_theme():
        updates["ui"] = config.ui.model_copy(update={"theme": theme})
    return config.model_copy(update=updates)


def zero_config_state(root: Path) -> Path:
    """Where a workspace with no config keeps its state (audit log, caches): inside the git
    directory, so the user's work tree stays clean (`git status`, `git clean -fdx`) and every
    user of the clone shares one audit log, as they share its anchor ref. A ``.cd4ml`` an
    earlier version made in the work tree is kept: its records are not left behind."""
    legacy = root / ".cd4ml"
    if legacy.is_dir():
        return legacy
    git_dir = git_common_dir(root)
    return git_dir / "cd4ml-console" if git_dir is not None else legacy


def load_config(config_file: Path | None = None, workspace: Path | None = None) -> ConsoleConfig:
    """Resolve the config the way the docs promise (see console.config.locate) and validate it."""
    return load_located(locate_config(config_file, workspace))


def load_located(located: Located) -> ConsoleConfig:
    """Validate the config found by :func:`console.config.locate.locate_config`."""
    if located.path is not None:
        return read_config_file(located.path)
    assert located.root is not None
    return zero_config(located.root)


def config_label(config: ConsoleConfig) -> str:
    return str(config.source) if config.source else f"zero config on {config.root}"
