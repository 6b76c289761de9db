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


PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def private_folder(path: Path, top: Path) -> None:
    """Make ``path`` and every folder up to ``top`` (the console's own, e.g. ~/.cache/
    cd4ml-console) readable by this user only: on a shared bastion others have no business
    in them. Folders above ``top`` are left as they are."""
    path.mkdir(parents=True, exist_ok=True, mode=PRIVATE_DIR)
    for folder in (path, *path.parents):
        with contextlib.suppress(OSError):
            if folder.stat().st_mode & 0o777 != PRIVATE_DIR:
                folder.chmod(PRIVATE_DIR)
        if folder == top or top not in folder.parents:
            break


def cache_root() -> Path:
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("cd4ml-console"))


def cache_file(kind: str, key: str, suffix: str) -> Path:
    """``~/.cache/cd4ml-console/KIND/<sha of key>SUFFIX`` (per platform, see platformdirs)."""
    digest = hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()[:24]
    return cache_root() / kind / f"{digest}{suffix}"


def write_atomic(path: Path, data: bytes) -> bool:
    """Replace ``path`` with ``data`` in one step (a private file in a private folder, made if
    missing; temp files killed writers left next to it are removed); False when it could not
    be written."""
    tmp = path.with_name(f"{path.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp")
    try:
        root = cache_root()
        private_folder(path.parent, root if root in path.parents else path.parent)
        for stray in path.parent.glob(f"{path.name}.*.tmp"):
            with contextlib.suppress(OSError):
                if time.time() - stray.stat().st_mtime > STRAY_AGE:
                    stray.unlink()
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, PRIVATE_FILE)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            tmp.unlink()
        return False
    return True
