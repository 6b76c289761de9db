"""The model list the overview showed last time, so the next start's first frame has content.

Only names and descriptions (what the registry lists, never a secret) are kept, one small JSON
file per workspace under the user's cache folder. The overview shows them, marked as from the
last session, until the registry answers; a missing, unreadable or foreign file is ignored.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from pathlib import Path
from typing import NamedTuple

VERSION = 1
MAX_BYTES = 4 << 20  # a listing of ~50,000 models; anything bigger is not ours


class Listed(NamedTuple):
    """A model as last listed: enough for a row's name and the filter."""

    name: str
    description: str = ""


def cache_file(key: str) -> Path:
    """Where the listing of the workspace identified by ``key`` (its config path) is kept."""
    from platformdirs import user_cache_dir

    digest = hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()[:24]
    return Path(user_cache_dir("cd4ml-console")) / "models" / f"{digest}.json"


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
    path = cache_file(key)
    doc = {
        "version": VERSION,
        "key": key,
        "saved_at": time.time(),
        "models": [[m.name, m.description] for m in models],
    }
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        for stray in path.parent.glob(f"{path.name}.*.tmp"):  # left by a killed session
            if time.time() - stray.stat().st_mtime > 60:
                stray.unlink()
        tmp.write_text(json.dumps(doc, separators=(",", ":")), encoding="utf-8")
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
