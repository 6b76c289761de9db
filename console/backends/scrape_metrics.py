"""The embedded ``metrics`` backend: scrape a Prometheus text-exposition endpoint directly and
derive serving health from the difference between consecutive scrapes, and figures over a
window from running totals kept per (model, stage, version) at every scrape."""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from urllib.parse import urlsplit, urlunsplit

import httpx
from prometheus_client.parser import text_string_to_metric_families

from console.domain import LiveWindow, MetricPoint, MetricSeries, ServingHealth, ShadowFigures
from console.logs import excerpt
from console.plugins import BackendContext
from console.plugins.options import ScrapeConfig
from console.ports import BackendError, InvalidResponse, NotFound, Unauthorized, Unreachable

MAX_BODY = 20 * 1024 * 1024
QUANTILE = 0.95
monotonic = time.monotonic  # module attribute so tests can drive the clock
UNITS = {"latency_p95_ms": "ms", "error_rate": "", "traffic_rps": "req/s", "prediction_mean": ""}

SNAPSHOT_GAP = 10.0  # seconds between the running totals kept for window()

# (sample name, sorted labels) -> (value, (model, stage, version, field, le, baseline))
Where = tuple[str, str, str, str, float, str]
Sample = tuple[float, Where]
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], Sample]
# (model, stage, version) -> (field, le, baseline) -> running total since the first scrape
Tally = dict[tuple[str, str, str], dict[tuple[str, float, str], float]]


def safe_url(url: str) -> str:
    """``url`` without userinfo and query string, fit for messages and logs."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return "<invalid URL>"
    host = f"[{host}]" if ":" in host else host
    return urlunsplit((parts.scheme, host + port, parts.path, "", ""))


def quantile(q: float, buckets: dict[float, float]) -> float | None:
    """The ``q`` quantile of cumulative histogram buckets, interpolating inside the bucket."""
    bounds = sorted(buckets)
    if not bounds or buckets[bounds[-1]] <= 0:
        return None
    rank = q * buckets[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):  # like Prometheus: the highest finite bound
                finite = [b for b in bounds if not math.isinf(b)]
                return finite[-1] if finite else None
            if count == below:
                return bound
            return lower + (bound - lower) * (rank - below) / (count - below)
        lower, below = bound, count
    return None


@dataclass
class _Window:
    """Sums over all series of one (model, stage): deltas, or totals on the first scrape."""

    buckets: dict[float, float] = field(default_factory=dict)
    lat_sum: float = 0.0
    lat_count: float = 0.0
    requests: float = 0.0
    errors: float = 0.0
    pred_sum: float = 0.0
    pred_count: float = 0.0
    has_requests: bool = False
    versions: dict[str, float] = field(default_factory=dict)
    lat_versions: dict[str, float] = field(default_factory=dict)
    created: float | None = None
    score_buckets: dict[float, float] = field(default_factory=dict)
    shadow: float = 0.0
    shadow_differ: float = 0.0
    baselines: dict[str, float] = field(default_factory=dict)

    def add(
        self, fieldname: str, version: str, le: float, value: float, baseline: str = ""
    ) -> None:
        if fieldname == "created":
            self.created = value if self.created is None else min(self.created, value)
        elif fieldname == "bucket":
            self.buckets[le] = self.buckets.get(le, 0.0) + value
        elif fieldname == "score_bucket":
            self.score_buckets[le] = self.score_buckets.get(le, 0.0) + value
        elif fieldname in ("shadow", "shadow_differ"):
            self.shadow += value
            self.shadow_differ += value if fieldname == "shadow_differ" else 0.0
            self.baselines[baseline] = self.baselines.get(baseline, 0.0) + value
        elif fieldname in ("requests", "errors"):
            self.has_requests = True
            self.requests += value
            self.errors += value if fieldname == "errors" else 0.0
            self.versions[version] = self.versions.get(version, 0.0) + value
        else:
            setattr(self, fieldname, getattr(self, fieldname) + value)
            if fieldname == "lat_count":
                self.lat_versions[version] = self.lat_versions.get(version, 0.0) + value

    def busiest(self) -> tuple[str, float]:
        """The version label with the most requests in the window (("", 0) when unlabelled)."""
        counts = self.versions if self.has_requests else self.lat_versions
        return max(counts.items(), key=lambda kv: kv[1], default=("", 0.0))

    def figures(self) -> dict[str, object]:
        """Counts of the window (``add`` was given differences of running totals)."""
        p95 = quantile(QUANTILE, self.buckets)
        if p95 is None and self.lat_count > 0:
            p95 = self.lat_sum / self.lat_count
        baseline = max(self.baselines.items(), key=lambda kv: kv[1], default=("", 0.0))[0]
        shadow = (
            ShadowFigures(
                baseline_version=baseline or None,
                compared=self.shadow,
                differ=self.shadow_differ,
            )
            if self.baselines
            else None
        )
        return {
            "requests": self.requests if self.has_requests else self.lat_count,
            "errors": self.errors if self.has_requests else None,
            "latency_p95_ms": p95 * 1000 if p95 is not None else None,
            "scores": tuple(sorted(self.score_buckets.items())),
            "shadow": shadow,
        }

    def derive(self, elapsed: float | None, now: float) -> dict[str, float | None]:
        p95 = quantile(QUANTILE, self.buckets)
        if p95 is None and self.lat_count > 0:
            p95 = self.lat_sum / self.lat_count
        count = self.requests if self.has_requests else self.lat_count
        if elapsed is None and self.created is not None and now > self.created:
            elapsed = now - self.created  # first scrape: average since the counters were created
        return {
            "latency_p95_ms": p95 * 1000 if p95 is not None else None,
            "error_rate": self.errors / self.requests if self.requests > 0 else None,
            "traffic_rps": count / elapsed if elapsed else None,
            "prediction_mean": self.pred_sum / self.pred_count if self.pred_count > 0 else None,
        }


class ScrapeMetrics:
    """MetricsSource scraping one ``/metrics`` endpoint; keeps a bounded history in memory."""

    name = "scrape"

    def __init__(self, config: ScrapeConfig, ctx: BackendContext) -> None:
        self.config = config
        self.ctx = ctx
        self.url = safe_url(config.url)
        self._client = httpx.AsyncClient(timeout=ctx.timeout, follow_redirects=False)
        self._prev: dict[tuple[str, tuple[tuple[str, str], ...]], float] | None = None
        self._prev_at = 0.0
        self._last_at: float | None = None
        self._inflight: asyncio.Task[None] | None = None
        self._latest: dict[tuple[str, str], ServingHealth] = {}
        self._served: dict[tuple[str, str], str] = {}
        # (model, stage, version or "" for all, metric) -> points, one per scrape
        self._series: dict[tuple[str, str, str, str], deque[MetricPoint]] = {}
        self._matched = 0
        self._failure: tuple[float, BackendError] | None = None
        # Running totals per series, summed per (model, stage, version) into the newest tally
        # and, every SNAPSHOT_GAP seconds, a kept one: window() subtracts an older tally.
        self._run: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        self._tally: tuple[float, Tally] | None = None
        self._kept: deque[tuple[float, Tally]] = deque()
        self._created: dict[tuple[str, str, str], float] = {}
        self._wall_at: datetime | None = None
        c = config
        req, shadow = c.requests_metric, c.shadow_metric
        self._fields = {
            f"{c.latency_metric}_bucket": "bucket",
            f"{c.latency_metric}_sum": "lat_sum",
            f"{c.latency_metric}_count": "lat_count",
            req: "requests",
            f"{req.removesuffix('_total')}_created": "created",
            f"{c.prediction_metric}_sum": "pred_sum",
            f"{c.prediction_metric}_count": "pred_count",
            f"{c.prediction_metric}_bucket": "score_bucket",
            shadow: "shadow",
        }
        for name, kind in ((req, "requests"), (shadow, "shadow")):
            if not name.endswith("_total"):
                self._fields[f"{name}_total"] = kind

    # -- scraping -------------------------------------------------------------------------

    def _redact(self, text: str) -> str:
        return text.replace(self.config.url, self.url)

    async def _fetch(self) -> bytes:
        url, limit = self.url, MAX_BODY
        try:
            async with self._client.stream(
                "GET", self.config.url, headers={"Accept": "text/plain;version=0.0.4"}
            ) as resp:
                if resp.status_code in (401, 403):
                    raise Unauthorized(
                        f"{url} refused the scrape (HTTP {resp.status_code})",
                        backend=self.name,
                        hint="put the credentials the endpoint expects in backends.metrics.url",
                    )
                if not 200 <= resp.status_code < 300:
                    raise Unreachable(f"{url} answered HTTP {resp.status_code}", backend=self.name)
                declared = resp.headers.get("content-length", "")
                if declared.isdigit() and int(declared) > limit:
                    raise self._too_big()
                body = bytearray()
                async for chunk in resp.aiter_bytes():
                    body += chunk
                    if len(body) > limit:
                        raise self._too_big()
                return bytes(body)
        except httpx.TimeoutException:
            raise Unreachable(
                f"{url} did not answer within {self.ctx.timeout:.0f}s", backend=self.name
            ) from None
        except (httpx.UnsupportedProtocol, httpx.InvalidURL):
            raise Unreachable(
                f"{url} is not an http(s) URL", backend=self.name, hint="fix backends.metrics.url"
            ) from None
        except httpx.ConnectError as exc:
            raise Unreachable(
                f"could not connect to {url}: {self._redact(str(exc)) or 'connection failed'}",
                backend=self.name,
                hint="is the model server running and the URL right?",
            ) from None
        except httpx.HTTPError as exc:
            raise Unreachable(
                f"scraping {url} failed: {type(exc).__name__}: {self._redact(str(exc))}",
                backend=self.name,
            ) from None

    def _too_big(self) -> InvalidResponse:
        return InvalidResponse(
            f"{self.url} returned more than {MAX_BODY >> 20} MB; is it a /metrics endpoint?",
            backend=self.name,
        )

    def _parse(self, body: bytes) -> Samples:
        """The samples this backend reads, keyed by series; anything unparsable is refused."""
        c = self.config
        out: Samples = {}
        try:
            for family in text_string_to_metric_families(body.decode("utf-8")):
                for s in family.samples:
                    fieldname = self._fields.get(s.name)
                    labels = s.labels
                    if (
                        fieldname is None
                        or c.model_label not in labels
                        or c.stage_label not in labels
                    ):
                        continue
                    if fieldname == "requests" and labels.get(c.outcome_label) == c.error_value:
                        fieldname = "errors"
                    if fieldname == "shadow" and labels.get(c.agreement_label) == c.differ_value:
                        fieldname = "shadow_differ"
                    bucketed = fieldname in ("bucket", "score_bucket")
                    le = float(labels["le"]) if bucketed else 0.0
                    key = (s.name, tuple(sorted(labels.items())))
                    where = (labels[c.model_label], labels[c.stage_label])
                    out[key] = (
                        float(s.value),
                        (
                            *where,
                            labels.get(c.version_label, ""),
                            fieldname,
                            le,
                            labels.get(c.baseline_label, ""),
                        ),
                    )
        except Exception as exc:  # the parser raises ValueError, IndexError, KeyError, ...
            raise InvalidResponse(
                f"{self.url} did not return Prometheus text format: {excerpt(str(exc), 120)}",
                backend=self.name,
                hint="point backends.metrics.url at the model server's /metrics",
            ) from None
        return out

    async def _scrape(self) -> None:
        try:
            try:
                body = await asyncio.wait_for(self._fetch(), self.ctx.timeout * 2)
            except TimeoutError:
                raise Unreachable(
                    f"{self.url} did not finish answering within {self.ctx.timeout * 2:.0f}s",
                    backend=self.name,
                ) from None
            samples = await asyncio.to_thread(self._parse, body)
        except BackendError as exc:
            self._failure = (monotonic(), exc)
            raise
        self._failure = None
        self._apply(samples, monotonic(), datetime.now(UTC))

    def _apply(self, samples: Samples, mono: float, now: datetime) -> None:
        prev = self._prev
        # (model, stage, version): "" is the whole stage, a version label only its own series
        windows: dict[tuple[str, str, str], _Window] = {}
        for key, (value, (model, stage, version, fieldname, le, base)) in samples.items():
            if prev is not None and fieldname != "created":
                old = prev.get(key)
                value = value if old is None or value < old else value - old  # reset: restart
            for who in {(model, stage, ""), (model, stage, version)}:
                windows.setdefault(who, _Window()).add(fieldname, version, le, value, base)
            if fieldname == "created":
                who = (model, stage, version)
                self._created[who] = min(value, self._created.get(who, value))
            else:  # on the first scrape: the totals since the counters were created
                self._run[key] = self._run.get(key, 0.0) + value
        elapsed = mono - self._prev_at if prev is not None else None
        latest: dict[tuple[str, str], ServingHealth] = {}
        for (model, stage, version), window in windows.items():
            values = window.derive(elapsed, now.timestamp())
            if not version:
                latest[(model, stage)] = self._health(model, stage, window, values, now)
            for metric, derived in values.items():
                if derived is not None:
                    series = self._series.setdefault(
                        (model, stage, version, metric), deque(maxlen=self.config.history)
                    )
                    series.append(MetricPoint(at=now, value=derived))
        self._latest, self._matched = latest, len(samples)
        self._prev = {key: value for key, (value, _) in samples.items()}
        self._prev_at = self._last_at = mono
        self._keep_tally(samples, mono, now)

    def _health(
        self,
        model: str,
        stage: str,
        window: _Window,
        values: dict[str, float | None],
        now: datetime,
    ) -> ServingHealth:
        busiest = window.busiest()
        if busiest[0] and (busiest[1] > 0 or (model, stage) not in self._served):
            self._served[(model, stage)] = busiest[0]
        return ServingHealth(
            model=model,
            stage=stage,
            version=self._served.get((model, stage)),
            observed_at=now,
            **values,
        )

    def _keep_tally(self, samples: Samples, mono: float, now: datetime) -> None:
        """The running totals per (model, stage, version) as of this scrape; one every
        SNAPSHOT_GAP seconds is kept for as long as window_history_seconds."""
        tally: Tally = {}
        for key, (_, (model, stage, version, fieldname, le, base)) in samples.items():
            if fieldname != "created":
                bucket = tally.setdefault((model, stage, version), {})
                slot = (fieldname, le, base)
                bucket[slot] = bucket.get(slot, 0.0) + self._run.get(key, 0.0)
        self._tally, self._wall_at = (mono, tally), now
        if not self._kept or mono - self._kept[-1][0] >= SNAPSHOT_GAP:
            self._kept.append((mono, tally))
        horizon = mono - self.config.window_history_seconds - SNAPSHOT_GAP
        while len(self._kept) > 1 and self._kept[1][0] <= horizon:
            self._kept.popleft()

    async def _fresh(self, force: bool = False) -> None:
        """Scrape unless the last one is recent; concurrent callers share one scrape."""
        half = self.config.interval_seconds / 2
        recent = self._last_at is not None and monotonic() - self._last_at < half
        if recent and not force:
            return
        failed = self._failure
        if failed is not None and not force and monotonic() - failed[0] < half:
            err = failed[1]  # a recent failure answers again until it is half an interval old
            raise type(err)(err.message, backend=err.backend, hint=err.hint)
        task = self._inflight
        if task is None or task.done():
            task = self._inflight = asyncio.create_task(self._scrape())
            task.add_done_callback(lambda t: t.cancelled() or t.exception())
        await asyncio.shield(task)

    def _not_found(self, model: str, stage: str) -> NotFound:
        seen = ", ".join(sorted({f"{m}/{s}" for m, s in self._latest})[:5]) or "none"
        return NotFound(
            f"{self.url} has no metrics for model {model!r} in stage {stage!r} (seen: {seen})",
            backend=self.name,
            hint=f"check the {self.config.model_label}/{self.config.stage_label} labels",
        )

    # -- the port -------------------------------------------------------------------------

    async def health(self, model: str, stage: str) -> ServingHealth:
        """The newest derived values and the version currently served for (model, stage)."""
        await self._fresh()
        found = self._latest.get((model, stage))
        if found is None:
            raise self._not_found(model, stage)
        return found

    async def series(
        self,
        model: str,
        stage: str,
        metric: str,
        *,
        since: datetime | None = None,
        points: int = 60,
        version: str | None = None,
    ) -> MetricSeries:
        """The last ``points`` values of ``metric`` (one per scrape), oldest first; of the
        series labelled ``version`` only, when given."""
        if metric not in UNITS:
            raise NotFound(
                f"unknown metric {metric!r}; use one of {', '.join(UNITS)}", backend=self.name
            )
        await self._fresh()
        who = (model, stage, version or "")
        if (model, stage) not in self._latest and not any((*who, m) in self._series for m in UNITS):
            raise self._not_found(model, stage)
        kept = list(self._series.get((*who, metric), ()))
        if since is not None:
            kept = [p for p in kept if p.at >= since]
        kept = kept[-points:] if points > 0 else []
        return MetricSeries(
            model=model, stage=stage, metric=metric, unit=UNITS[metric], points=tuple(kept)
        )

    async def window(
        self, model: str, stage: str, *, version: str | None = None, seconds: float = 600.0
    ) -> LiveWindow:
        """Counts between the newest scrape and the kept tally nearest ``seconds`` before it
        (the oldest one while the console has run for less; on the first scrape, the counters'
        totals since they were created): ``seconds`` on the result says what is covered."""
        await self._fresh()
        assert self._tally is not None and self._wall_at is not None
        mono, now = self._tally
        keys = [k for k in now if k[:2] == (model, stage) and version in (None, k[2])]
        if not keys:
            if (model, stage) in self._latest or any(k[:2] == (model, stage) for k in now):
                # The stage serves, not this version (yet): no requests, over no known span.
                return LiveWindow(
                    model=model,
                    stage=stage,
                    version=version,
                    requests=0.0,
                    errors=0.0,
                    observed_at=self._wall_at,
                )
            raise self._not_found(model, stage)
        base_at, base = self._base(keys, mono, seconds)
        window = _Window()
        for key in keys:
            old = base.get(key, {}) if base is not None else {}
            for (fieldname, le, baseline), total in now[key].items():
                window.add(
                    fieldname, key[2], le, total - old.get((fieldname, le, baseline), 0.0), baseline
                )
        served = version or window.busiest()[0] or None
        return LiveWindow(
            model=model,
            stage=stage,
            version=served,
            seconds=max(0.0, mono - base_at),
            observed_at=self._wall_at,
            **window.figures(),
        )

    def _base(
        self, keys: list[tuple[str, str, str]], mono: float, seconds: float
    ) -> tuple[float, Tally | None]:
        """The tally to subtract: the newest one at least ``seconds`` old, else the oldest.
        The counters' creation (a tally of zeros) competes when it lies within the window, or
        when nothing older was scraped (one reading: the totals, over their whole life)."""
        kept = [(at, tally) for at, tally in self._kept if at < mono]
        created = [self._created[k] for k in keys if k in self._created]
        wall = self._wall_at.timestamp() if self._wall_at is not None else 0.0
        age = wall - min(created) if created else None
        if age is not None and (not kept or age <= seconds):
            kept = sorted([(mono - max(0.0, age), {}), *kept], key=lambda t: t[0])
        if not kept:
            return mono, self._tally[1] if self._tally else None
        old_enough = [(at, t) for at, t in kept if at <= mono - seconds]
        at, tally = old_enough[-1] if old_enough else kept[0]
        return at, tally

    async def check(self) -> str:
        """Scrape now; say how many model/stage pairs the endpoint exposes."""
        await self._fresh(force=True)
        if not self._matched:
            names = f"{self.config.latency_metric}, {self.config.requests_metric}"
            raise InvalidResponse(
                f"{self.url} exposes none of {names} with {self.config.model_label}/"
                f"{self.config.stage_label} labels",
                backend=self.name,
                hint="set latency_metric/requests_metric/... in backends.metrics",
            )
        return f"scraped {self.url}: {len(self._latest)} model/stage pairs, {self._matched} series"

    async def aclose(self) -> None:
        task, self._inflight = self._inflight, None
        if task is not None and not task.done():
            task.cancel()
        await self._client.aclose()
