"""What the model screen knows about a model's versions, kept apart from how it is shown.

The view (versions, stages) arrives once; details arrive per visible row and are kept in a
bounded LRU, as are computed lineages. A detail's CI runs come apart (a CI server that hangs
holds back nothing else) and join it when both are here, whichever came first.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from console.domain import ModelVersion
    from console.services.lineage import Lineage
    from console.services.overview import ModelView, VersionCI, VersionDetail

DETAILS_CACHE = 3000
LINEAGE_CACHE = 64


class VersionBook:
    """Versions by name (newest first), their details, and the lineages already computed."""

    def __init__(self, prod_stage: str) -> None:
        self.prod_stage = prod_stage
        self.view: ModelView | None = None
        self.by_name: dict[str, ModelVersion] = {}
        self.order: list[str] = []  # newest first
        self.details: OrderedDict[str, VersionDetail] = OrderedDict()
        self._ci: OrderedDict[str, VersionCI] = OrderedDict()  # CI runs come before their detail
        self.lineages: OrderedDict[tuple[str, str | None], Lineage] = OrderedDict()

    def load(self, view: ModelView) -> None:
        self.view = view
        self.by_name = {v.version: v for v in view.versions}
        self.order = [v.version for v in reversed(view.versions)]

    @property
    def production(self) -> str | None:
        return self.view.stage_version(self.prod_stage) if self.view is not None else None

    def missing(self, names: Iterable[str], pending: set[str]) -> list[str]:
        """Names of known versions whose details are neither here nor on their way."""
        return [
            n for n in names if n in self.by_name and n not in self.details and n not in pending
        ]

    def add_details(self, got: Mapping[str, VersionDetail]) -> None:
        for name, detail in got.items():
            runs = self._ci.pop(name, None)
            if runs is not None and not detail.ci_read:
                detail = detail.with_ci(runs)
            self.details[name] = detail
            self.details.move_to_end(name)
        while len(self.details) > DETAILS_CACHE:
            self.details.popitem(last=False)

    def add_ci(self, got: Mapping[str, VersionCI]) -> None:
        """CI runs read apart: into their detail, or kept until it comes."""
        for name, runs in got.items():
            detail = self.details.get(name)
            if detail is not None:
                self.details[name] = detail.with_ci(runs)
            else:
                self._ci[name] = runs
        while len(self._ci) > DETAILS_CACHE:
            self._ci.popitem(last=False)

    def forget(self, names: Iterable[str]) -> None:
        """Drop details (and every lineage) so the next look reads them again."""
        for name in names:
            self.details.pop(name, None)
            self._ci.pop(name, None)
        self.lineages.clear()

    def lineage(self, key: tuple[str, str | None]) -> Lineage | None:
        return self.lineages.get(key)

    def keep_lineage(self, key: tuple[str, str | None], lineage: Lineage) -> None:
        self.lineages[key] = lineage
        while len(self.lineages) > LINEAGE_CACHE:
            self.lineages.popitem(last=False)

    def stages_of(self, version: str) -> list[str]:
        if self.view is None:
            return []
        stages = [a.stage for a in self.view.stages if a.version == version]
        v = self.by_name.get(version)
        if v is not None:
            stages += [s for s in v.stages if s not in stages]
        return stages

    def base_for(self, version: str) -> ModelVersion | None:
        """Production; for production itself, the version registered just before it."""
        prod = self.production
        if prod and prod != version and prod in self.by_name:
            return self.by_name[prod]
        if version in self.by_name:
            i = self.order.index(version)
            if i + 1 < len(self.order):
                return self.by_name[self.order[i + 1]]
        return None

    def haystack(self, version: str) -> str:
        """What the `/` filter searches: version, author, commit and stages."""
        v = self.by_name[version]
        stages = " ".join(self.stages_of(version))
        return f"{v.version} {v.created_by} {v.commit[:12]} {stages}".lower()

    def problems(self) -> list[str]:
        """Backend kinds that failed for any loaded detail."""
        return [k for d in self.details.values() for k, s in d.sections.items() if s.error]
