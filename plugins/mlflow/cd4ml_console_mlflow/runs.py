"""Facts about the runs that produced model versions: git commit, metrics, params, datasets.

Fetched in batches (``runs/search`` with ``attributes.run_id IN (...)``) so a model with
10,000 versions costs ~100 requests once; finished runs are cached in a bounded LRU dict
(their facts no longer change). Falls back to ``runs/get`` per run.
"""

from __future__ import annotations

import asyncio
import math
import re
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from cd4ml_console_mlflow.schema import ExperimentPage, Run, RunPage, RunReply
from cd4ml_console_mlflow.transport import MlflowTransport
from console.ports import NotFound

GIT_COMMIT_TAG = "mlflow.source.git.commit"
TERMINAL = frozenset({"FINISHED", "FAILED", "KILLED"})
_SAFE_ID = re.compile(r"^[A-Za-z0-9][\w\-]{0,255}$")


@dataclass(frozen=True)
class RunFacts:
    """What the console shows about a version's source run."""

    run_id: str
    user_id: str = ""
    status: str = ""
    commit: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    datasets: tuple[str, ...] = ()  # "name@digest (context)"


def coerce_param(value: str) -> Any:
    """MLflow params are strings; give numbers and booleans back their type for diffs."""
    low = value.strip().lower()
    if low in ("true", "false"):
        return low == "true"
    try:
        return int(value)
    except ValueError:
        pass
    try:
        number = float(value)
    except ValueError:
        return value
    return number if math.isfinite(number) else value


def run_facts(run: Run) -> RunFacts:
    """Flatten one REST run into RunFacts (non-finite metric values are dropped)."""
    tags = {t.key: t.value for t in run.data.tags}
    datasets = []
    for di in run.inputs.dataset_inputs:
        context = next((t.value for t in di.tags if t.key == "mlflow.data.context"), "")
        text = f"{di.dataset.name}@{di.dataset.digest}"
        datasets.append(f"{text} ({context})" if context else text)
    return RunFacts(
        run_id=run.info.id,
        user_id=run.info.user_id or tags.get("mlflow.user", ""),
        status=run.info.status,
        commit=tags.get(GIT_COMMIT_TAG, ""),
        metrics={
            m.key: m.value
            for m in run.data.metrics
            if m.value is not None and math.isfinite(m.value)
        },
        params={p.key: coerce_param(p.value) for p in run.data.params},
        datasets=tuple(datasets),
    )


class RunFactsCache:
    """Batch fetcher with a bounded LRU of finished runs."""

    batch_threshold = 8  # fewer missing runs than this: one runs/get each
    chunk = 100  # run ids per runs/search request
    max_experiments = 200  # more than this: skip batching, runs/get each
    concurrency = 8

    def __init__(self, http: MlflowTransport, maxsize: int = 50_000) -> None:
        self._http = http
        self._maxsize = maxsize
        self._lru: OrderedDict[str, RunFacts] = OrderedDict()
        self._experiments: tuple[str, ...] | None = None
        self._sem = asyncio.Semaphore(self.concurrency)

    def _remember(self, facts: RunFacts) -> None:
        if facts.status not in TERMINAL:
            return
        self._lru[facts.run_id] = facts
        self._lru.move_to_end(facts.run_id)
        while len(self._lru) > self._maxsize:
            self._lru.popitem(last=False)

    async def facts(self, run_ids: Iterable[str]) -> dict[str, RunFacts]:
        """Facts for every run id that still exists (deleted runs are left out)."""
        out: dict[str, RunFacts] = {}
        missing: list[str] = []
        for rid in dict.fromkeys(r for r in run_ids if r):
            hit = self._lru.get(rid)
            if hit is not None:
                self._lru.move_to_end(rid)
                out[rid] = hit
            else:
                missing.append(rid)
        if len(missing) >= self.batch_threshold and all(_SAFE_ID.match(r) for r in missing):
            found = await self._search(missing)
            out.update(found)
            missing = [r for r in missing if r not in found]
        if missing:
            results = await asyncio.gather(*(self._get(r) for r in missing))
            out.update({f.run_id: f for f in results if f is not None})
        for facts in out.values():
            self._remember(facts)
        return out

    async def _get(self, run_id: str) -> RunFacts | None:
        async with self._sem:
            try:
                reply = await self._http.get("runs/get", RunReply, {"run_id": run_id})
            except NotFound:
                return None
        facts = run_facts(reply.run)
        return facts if facts.run_id else None

    async def _experiment_ids(self) -> tuple[str, ...]:
        if self._experiments is None:
            ids: list[str] = []
            token = ""
            while len(ids) <= self.max_experiments:
                params: dict[str, Any] = {"max_results": 1000, "view_type": "ALL"}
                if token:
                    params["page_token"] = token
                page = await self._http.get("experiments/search", ExperimentPage, params)
                ids.extend(e.experiment_id for e in page.experiments)
                token = page.next_page_token
                if not token:
                    break
            self._experiments = tuple(ids)
        return self._experiments

    async def _search(self, run_ids: list[str]) -> dict[str, RunFacts]:
        experiments = await self._experiment_ids()
        if not experiments or len(experiments) > self.max_experiments:
            return {}

        async def one(ids: list[str]) -> list[RunFacts]:
            quoted = ", ".join(f"'{r}'" for r in ids)
            body = {
                "experiment_ids": list(experiments),
                "filter": f"attributes.run_id IN ({quoted})",
                "max_results": len(ids),
                "run_view_type": "ALL",
            }
            async with self._sem:
                page = await self._http.search("runs/search", RunPage, body)
            return [run_facts(r) for r in page.runs]

        chunks = [run_ids[i : i + self.chunk] for i in range(0, len(run_ids), self.chunk)]
        found = {f.run_id: f for batch in await asyncio.gather(*map(one, chunks)) for f in batch}
        if len(found) < len(run_ids):
            self._experiments = None  # a new experiment may hold the rest: re-list next time
        return found


__all__ = ["GIT_COMMIT_TAG", "RunFacts", "RunFactsCache", "coerce_param", "run_facts"]
