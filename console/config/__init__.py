"""Configuration: TOML validated by pydantic, found the documented way."""

from console.config.load import (
    CONFIG_NAME,
    ConfigError,
    NoWorkspace,
    config_label,
    find_git_root,
    load_config,
    parse_config,
    read_config_file,
    user_config_path,
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
    "parse_config",
    "read_config_file",
    "user_config_path",
    "zero_config",
]
