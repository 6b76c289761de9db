"""Files in the user's cache folder that only make a start faster: where each lives, and how
one is replaced without a reader ever seeing half of it.

Losing one costs a slower start, never data, so a failure to write (read-only home, full disk)
is reported to the caller as False and not raised.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from pathlib import Path

STRAY_AGE = 60  # seconds after which a temp file is one a killed process left


def cache_file(kind: str, key: str, suffix: str) -> Path:
    """``~/.cache/cd4ml-console/KIND/<sha of key>SUFFIX`` (per platform, see platformdirs)."""
    from platformdirs import user_cache_dir

    digest = hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()[:24]
    return Path(user_cache_dir("cd4ml-console")) / kind / f"{digest}{suffix}"


def write_atomic(path: Path, data: bytes) -> bool:
    """Replace ``path`` with ``data`` in one step (a private folder is made if missing, temp
    files killed writers left next to it are removed); False when it could not be written."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        for stray in path.parent.glob(f"{path.name}.*.tmp"):
            with contextlib.suppress(OSError):
                if time.time() - stray.stat().st_mtime > STRAY_AGE:
                    stray.unlink()
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        return False
    return True
