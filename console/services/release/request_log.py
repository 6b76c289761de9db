"""The requests of a model, folded from the audit log incrementally.

The log is shared by every session and process, so each read asks the store again, but only
for the events after the newest one already folded (``events(model=, since_seq=)``, an
index range in both stores): reading the requests costs what was appended since the last
read, not the whole log. The newest folded event is read again each time and compared by
hash; a log that is not the one folded (replaced, restored, damaged) is folded from the start.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from console.config import ConsoleConfig
from console.domain import AuditEvent
from console.services.release.facts import call
from console.services.release.requests import RequestFold, RequestView

FOLDS_KEPT = 32  # models whose folds stay in memory (a fold holds the model's request events)


class RequestLog:
    """Per-model folds of one audit store, for the ``size`` models read most recently."""

    def __init__(self, size: int = FOLDS_KEPT, *, config: ConsoleConfig | None = None) -> None:
        self.size = size
        self.config = config  # names the audit backend in messages
        self._store: Any = None
        self._folds: OrderedDict[str | None, RequestFold] = OrderedDict()

    async def read(
        self, store: Any, model: str | None, timeout: float
    ) -> tuple[dict[str, RequestView], list[str]]:
        """(every request of ``model`` (None: all) by id, oldest first; the ids of those still
        pending, expiry aside) as the log says now; the dict is the caller's to change.
        Raises facts.Unavailable when the store does not answer."""
        if store is not self._store:
            self._store, self._folds = store, OrderedDict()
        fold = self._folds.get(model)
        last = fold.last if fold is not None else None
        events = await self._read(store, model, last.seq - 1 if last else 0, timeout)
        if fold is not None and last is not None:
            if not _continues(events, last):
                fold, events = None, await self._read(store, model, 0, timeout)
            else:
                events = events[1:]
        if fold is None:
            fold = RequestFold()
        fold.add(events)
        self._folds[model] = fold
        self._folds.move_to_end(model)
        while len(self._folds) > self.size:
            self._folds.popitem(last=False)
        return dict(fold.views), list(fold.pending)

    async def _read(
        self, store: Any, model: str | None, since_seq: int, timeout: float
    ) -> Sequence[AuditEvent]:
        events = store.events(model=model, since_seq=since_seq)
        return await call("audit", events, timeout, self.config)


def _continues(events: Sequence[AuditEvent], last: AuditEvent) -> bool:
    """Whether ``events`` (read from just before ``last``) start with ``last`` itself."""
    return bool(events) and events[0].seq == last.seq and events[0].hash == last.hash
