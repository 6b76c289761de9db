"""The model list the overview showed last time, so the next start's first frame has content.

Only names and descriptions (what the registry lists, never a secret) are kept, one small JSON
file per workspace under the user's cache folder. The overview shows them, marked as from the
last session, until the registry answers; a missing, unreadable or foreign file is ignored.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, NamedTuple

from console import cachefiles

if TYPE_CHECKING:
    from pathlib import Path

VERSION = 1
MAX_BYTES = 4 << 20  # a listing of ~50,000 models; anything bigger is not ours


class Listed(NamedTuple):
    """A model as last listed: enough for a row's name and the filter."""

    name: str
    description: str = ""


def cache_file(key: str) -> Path:
    """Where the listing of the workspace identified by ``key`` (its config path) is kept."""
    return cachefiles.cache_file("models", key, ".json")


def read_listing(key: str) -> tuple[list[Listed], float] | None:
    """(models, when saved as epoch seconds), or None when there is nothing usable."""
    path = cache_file(key)
    try:
        if path.stat().st_size > MAX_BYTES:
            return None
        doc = json.loads(path.read_bytes())
        if doc.get("version") != VERSION or doc.get("key") != key:
            return None
        models = [Listed(str(n), str(d)) for n, d in doc["models"]]
        return models, float(doc["saved_at"])
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def write_listing(key: str, models: list[Listed]) -> None:
    """Replace the saved listing atomically; a failure (read-only home, full disk) is ignored:
    the cache only makes the next start faster."""
    doc = {
        "version": VERSION,
        "key": key,
        "saved_at": time.time(),
        "models": [[m.name, m.description] for m in models],
    }
    cachefiles.write_atomic(cache_file(key), json.dumps(doc, separators=(",", ":")).encode("utf-8"))
