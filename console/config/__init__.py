"""Configuration: TOML validated by pydantic, found the documented way.

Names are resolved lazily (PEP 562): ``console.config.locate`` (where the config is, which
theme it asks for) is imported by the TUI before its first frame and must not pull pydantic in;
the first use of a validated name imports ``load``/``model``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from console.config.locate import (
    CONFIG_NAME,
    ConfigError,
    NoWorkspace,
    find_git_root,
    user_config_path,
)

if TYPE_CHECKING:
    from console.config.load import (
        config_label,
        load_config,
        load_located,
        parse_config,
        read_config_file,
        zero_config,
    )
    from console.config.model import (
        DEFAULT_BACKENDS,
        KIND_NAMES,
        BackendConfig,
        ConsoleConfig,
        MetricSpec,
        ModelConfig,
        PolicyConfig,
        StagePolicy,
    )

_LAZY = {
    "config_label": "load",
    "load_config": "load",
    "load_located": "load",
    "parse_config": "load",
    "read_config_file": "load",
    "zero_config": "load",
    "DEFAULT_BACKENDS": "model",
    "KIND_NAMES": "model",
    "BackendConfig": "model",
    "ConsoleConfig": "model",
    "MetricSpec": "model",
    "ModelConfig": "model",
    "PolicyConfig": "model",
    "StagePolicy": "model",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f"console.config.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "CONFIG_NAME",
    "DEFAULT_BACKENDS",
    "KIND_NAMES",
    "BackendConfig",
    "ConfigError",
    "ConsoleConfig",
    "MetricSpec",
    "ModelConfig",
    "NoWorkspace",
    "PolicyConfig",
    "StagePolicy",
    "config_label",
    "find_git_root",
    "load_config",
    "load_located",
    "parse_config",
    "read_config_file",
    "user_config_path",
    "zero_config",
]
