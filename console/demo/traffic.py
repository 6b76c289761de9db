"""Traffic for the demo model server: real HTTP requests to ``/predict`` at a few requests per
second per model in production (the server mirrors each to the other stages), from a small
fixed pool of workers fed through a bounded queue (a slow version makes requests pile up only
to the queue's size; the rest are dropped)."""

from __future__ import annotations

import json
import logging
import queue
import random
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from urllib.parse import urlencode

from console.demo.story import PRODUCTION, story_model

log = logging.getLogger("console.demo.traffic")

WORKERS = 8
QUEUE_SIZE = 32
TICK = 0.05


def example_features(model: str, rng: random.Random) -> dict[str, object]:
    """A plausible feature row for ``model`` (from its newest schema in the story)."""
    try:
        data = [v.data for v in story_model(model).versions if v.data is not None][-1]
        columns = data.columns if data is not None else ()
    except (KeyError, IndexError):
        columns = ()
    row: dict[str, object] = {}
    for name, kind in columns[:-1]:  # the last column is the label
        if kind == "number":
            row[name] = round(rng.lognormvariate(3, 1), 2)
        elif kind == "integer":
            row[name] = rng.randint(0, 365)
        elif kind == "boolean":
            row[name] = rng.random() < 0.5
        else:
            row[name] = rng.choice(["a", "b", "c", "d"])
    return row


class TrafficGenerator:
    """Calls ``BASE/predict`` for every (model, production) ``targets()`` returns until
    stopped (other stages see the same requests mirrored by the server)."""

    def __init__(
        self,
        base_url: str,
        targets: Callable[[], list[tuple[str, str]]],
        *,
        rps: float = 3.0,
        seed: int = 7,
        max_requests: int | None = None,
        timeout: float = 5.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.targets = targets
        self.rps = rps
        self.max_requests = max_requests
        self.timeout = timeout
        self.sent = 0
        self.failed = 0
        self._rng = random.Random(seed)
        self._queue: queue.Queue[tuple[str, str] | None] = queue.Queue(QUEUE_SIZE)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def start(self) -> TrafficGenerator:
        self._threads = [threading.Thread(target=self._schedule, name="traffic", daemon=True)]
        self._threads += [
            threading.Thread(target=self._work, name=f"traffic-{i}", daemon=True)
            for i in range(WORKERS)
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=self.timeout + 1)
        self._threads = []

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def _schedule(self) -> None:
        """Poisson arrivals per target; the loop ends on stop or after ``max_requests``."""
        due: dict[tuple[str, str], float] = {}
        clock = 0.0
        scheduled = 0
        while not self._stop.wait(TICK):
            clock += TICK
            for target in self.targets():
                rate = self.rps if target[1] == PRODUCTION else 0.0  # the server mirrors
                if rate <= 0:
                    continue
                when = due.setdefault(target, clock + self._rng.expovariate(rate))
                while when <= clock:
                    try:
                        self._queue.put_nowait(target)
                        scheduled += 1
                    except queue.Full:
                        log.debug("traffic queue full; dropping a request to %s", target)
                    when += self._rng.expovariate(rate)
                due[target] = when
            if self.max_requests is not None and scheduled >= self.max_requests:
                break
        for _ in range(WORKERS):
            try:
                self._queue.put(None, timeout=self.timeout)
            except queue.Full:
                break

    def _work(self) -> None:
        rng = random.Random(self._rng.random())
        while not self._stop.is_set():
            try:
                target = self._queue.get(timeout=0.2)
            except queue.Empty:
                continue
            if target is None:
                return
            self._call(*target, rng)

    def _call(self, model: str, stage: str, rng: random.Random) -> None:
        url = f"{self.base_url}/predict?{urlencode({'model': model, 'stage': stage})}"
        body = json.dumps({"features": example_features(model, rng)}).encode()
        request = urllib.request.Request(
            url, data=body, headers={"Content-Type": "application/json"}, method="POST"
        )
        ok = True
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            exc.close()  # a 500 is the model failing: the server has counted it
        except (urllib.error.URLError, OSError) as exc:
            ok = False
            log.debug("traffic to %s failed: %s", url, exc)
        with self._lock:
            self.sent += 1
            self.failed += 0 if ok else 1
