"""YAML reading with libyaml's C loader when present (10x faster on big files), safe either way."""

from __future__ import annotations

from typing import Any

import yaml

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def safe_load(text: str | bytes) -> Any:
    """``yaml.safe_load`` semantics: plain data only, no arbitrary objects."""
    return yaml.load(text, Loader=_Loader)
