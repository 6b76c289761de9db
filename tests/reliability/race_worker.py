"""A long-lived promoter for the race test: one promotion per command, held at the registry's
compare-and-set until the coordinator releases every worker of the round at once.

stdin lines:  {"round": R, "version": V[, "model": M]}   then, when asked, "go"
stdout lines: {"at": "assign", "round": R} and {"round": R, "status", "kind", "message"}

usage: python race_worker.py WORKSPACE USER [AUDIT_FILE]
(AUDIT_FILE: this worker's own audit store, as a second clone or bastion would have)
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from console.config import load_config
from console.domain import Actor
from console.services.release import Refused, ReleaseError, ReleaseService
from console.services.workspace import open_workspace


def say(doc: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(doc) + "\n")
    sys.stdout.flush()


class Held:
    """The registry, with ``assign`` held until the coordinator says go."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.round = -1

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def assign(self, *args: Any, **kw: Any) -> Any:
        say({"at": "assign", "round": self.round})
        line = await asyncio.to_thread(sys.stdin.readline)
        if line.strip() != "go":
            raise SystemExit(f"expected go, got {line!r}")
        return await self.inner.assign(*args, **kw)


async def main() -> None:
    root, user = Path(sys.argv[1]), sys.argv[2]
    config = load_config(None, root)
    if len(sys.argv) > 3:
        base = config.backend("audit")
        assert base is not None
        audit = type(base)(**{**base.model_dump(), "path": sys.argv[3]})
        config = config.model_copy(update={"backends": {**config.backends, "audit": audit}})
    async with open_workspace(config) as ws:
        held = Held(ws.backends["registry"])
        ws.backends["registry"] = held

        class NoAnchor:  # the race is about the registry; the anchor has its own tests
            async def prove(self) -> None:
                return None

            async def advance(self) -> None:
                return None

        svc = ReleaseService(ws, identity=lambda: Actor(user=user), anchor=NoAnchor())
        say({"ready": user})
        while True:
            line = await asyncio.to_thread(sys.stdin.readline)
            if not line.strip():
                return
            cmd = json.loads(line)
            held.round = cmd["round"]
            try:
                res = await svc.promote(cmd.get("model", "m"), cmd["version"], "staging",
                                        reason=f"race {cmd['round']}", ack_schema_change=True)  # fmt: skip
                say({"round": cmd["round"], "status": res.status, "kind": "",
                     "message": res.message})  # fmt: skip
            except Refused as exc:
                say({"round": cmd["round"], "status": "refused", "kind": exc.kind,
                     "message": exc.message})  # fmt: skip
            except ReleaseError as exc:
                say({"round": cmd["round"], "status": "failed", "kind": "",
                     "message": exc.message})  # fmt: skip


if __name__ == "__main__":
    asyncio.run(main())
