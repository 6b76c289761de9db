"""Writing audit events for one action: every write has a timeout, and a failed write is a
ReleaseError (fail closed) unless the caller says it is best effort (refusals)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from console.audit.anchor import RECORDED
from console.audit.chain import Anchor
from console.config import ConsoleConfig
from console.domain import Actor, AuditEvent
from console.identity import identity_details, principal
from console.ports import AuditStore, StageBusy
from console.services.release.facts import describe
from console.services.release.results import ReleaseError

log = logging.getLogger(__name__)


class Anchoring(Protocol):
    """Where the audit log's head is anchored (console.audit.anchor.GitAnchor)."""

    async def prove(self) -> Anchor | None: ...

    async def advance(self) -> Anchor | None: ...


class Told(Protocol):
    """What is told of each event once it is durable (services.notify.Notices)."""

    def fire(self, event: AuditEvent, journal: Journal) -> None: ...


class Journal:
    """Appends events on behalf of ``actor``; remembers the seq of each event written.

    Before its first write it proves the store is the anchored log (``anchoring.prove``):
    no proof, no write, so no mutation. Every event then records the anchor it was written
    under (``details.anchor``), so the log itself remembers that it was anchored."""

    def __init__(
        self,
        store: AuditStore | None,
        actor: Actor,
        clock: Callable[[], datetime],
        timeout: float,
        *,
        config: ConsoleConfig | None = None,
        anchoring: Anchoring | None = None,
        notices: Told | None = None,
    ) -> None:
        self.store = store
        self.notices = notices  # services.notify.Notices: told of each event once it is durable
        self.config = config  # names the audit backend in messages
        self.actor = actor
        self.user = principal(actor)
        self.clock = clock
        self.timeout = timeout
        self.anchoring = anchoring
        self.anchor: Anchor | None = None
        self.proven = anchoring is None
        self.written: list[int] = []
        self.notes: list[str] = []  # said with the action's result (e.g. what was reconciled)

    async def prove(self) -> None:
        """Check the store against its anchor once; ReleaseError (nothing written) if not."""
        if self.proven or self.anchoring is None:
            return
        try:
            self.anchor = await asyncio.wait_for(self.anchoring.prove(), self.timeout)
        except Exception as exc:
            why = describe(exc, "audit anchor", self.timeout, self.config)
            raise ReleaseError(
                f"refused: the audit log can not be shown to be the anchored one ({why}); "
                "nothing was changed"
            ) from exc
        self.proven = True

    async def write(
        self,
        action: str,
        *,
        model: str,
        version: str = "",
        stage: str = "",
        before: str | None = "",
        after: str | None = "",
        reason: str = "",
        result: str = "",
        request_id: str = "",
        details: dict[str, Any] | None = None,
        doing: str = "",
    ) -> AuditEvent:
        """Durably append one event; ReleaseError when the store can not take it."""
        if self.store is None:
            raise ReleaseError(
                "no audit store is available, so nothing was changed "
                "(check backends.audit; `cd4ml-console doctor` says what is wrong)"
            )
        self._check_persona()
        await self.prove()
        a = self.anchor
        recorded = {RECORDED: {"count": a.count, "commit": a.source}} if a else {}
        event = AuditEvent(
            seq=0,
            at=self.clock(),
            actor=self.user,
            action=action,
            model=model,
            version=version,
            stage=stage,
            before=before or "",
            after=after or "",
            reason=reason,
            result=result,
            request_id=request_id,
            details={"identity": identity_details(self.actor), **recorded, **(details or {})},
        )
        try:
            stored: AuditEvent = await asyncio.wait_for(self.store.append(event), self.timeout)
        except StageBusy:  # the stage's lock is held: the caller says by whom
            raise
        except Exception as exc:
            what = doing or "nothing was changed"
            why = describe(exc, "audit", self.timeout, self.config)
            raise ReleaseError(
                f"the audit log could not record the {action} ({why}); {what}", why=why
            ) from exc
        self.written.append(stored.seq)
        if self.notices is not None:
            self.notices.fire(stored, self)
        return stored

    def _check_persona(self) -> None:
        """A demo persona (a story colleague played by the OS user) writes only into a demo
        workspace's log: anywhere else it would be an event in another person's name."""
        if not self.actor.demo_persona_of:
            return
        from console.config.demo_marker import is_demo_workspace

        root = self.config.root if self.config is not None else None
        if root is None or not is_demo_workspace(root):
            raise ReleaseError(
                f"refused: {self.actor.user} is a demo persona, and {root or 'this workspace'} "
                "is not a demo workspace; nothing was changed"
            )

    async def try_write(self, action: str, **fields: Any) -> AuditEvent | None:
        """Best effort (refused attempts): a failure is logged, never raised."""
        try:
            return await self.write(action, **fields)
        except ReleaseError as exc:
            log.warning("could not record a refused %s: %s", action, exc)
            return None
