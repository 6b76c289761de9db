"""ModelRegistry over the MLflow Model Registry: registered models, versions, aliases as stages.

MLflow has no compare-and-set on aliases, so ``assign`` re-reads the alias before the write
(Conflict unless it shows ``expected``) and after it (Conflict when someone else moved it in
between). Who assigned a stage and when is kept in version tags the console writes:
``cd4ml.stage.<stage>.assigned_at`` / ``.assigned_by`` / ``.message``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime
from typing import Any

from cd4ml_console_mlflow import MlflowConfig, alias_problem
from cd4ml_console_mlflow.mapping import (
    history_events,
    listed_version,
    stage_tag,
    to_assignment,
    to_model,
    to_version,
    with_run,
)
from cd4ml_console_mlflow.runs import RunFacts, RunFactsCache
from cd4ml_console_mlflow.schema import ModelVersion as RestVersion
from cd4ml_console_mlflow.schema import (
    ModelVersionPage,
    ModelVersionReply,
    RegisteredModel,
    RegisteredModelPage,
    RegisteredModelReply,
)
from cd4ml_console_mlflow.transport import MlflowTransport, ServerSaid
from console.domain import Model, ModelVersion, RegistryEntry, RegistryEvent, StageAssignment
from console.plugins import BackendContext
from console.plugins.credentials import credential_name
from console.ports import BackendError, Conflict, NotFound, Unreachable

MESSAGE_LIMIT = 5000


NAMES_PER_SEARCH = 50  # models per versions search: a filter of a few KB, ~1,000 versions


def _version_order(v: RestVersion) -> tuple[int, str]:
    return (int(v.version) if v.version.isdigit() else -1, v.version)


def _unexpected(exc: BaseException) -> BackendError:
    """A failure that is not a BackendError, as one (it is reported per model)."""
    return Unreachable(f"MLflow versions search failed: {type(exc).__name__}", backend="mlflow")


def _quote(value: str) -> str:
    """A string literal for MLflow's search filter grammar."""
    return f'"{value}"' if "'" in value else f"'{value}'"


class MlflowRegistry:
    """The ``mlflow`` registry backend (REST, never ``import mlflow``)."""

    name = "mlflow"

    def __init__(
        self, config: MlflowConfig, ctx: BackendContext, *, transport: Any | None = None
    ) -> None:
        stages: list[str] = list(getattr(ctx.config, "stages", None) or [])
        unknown = sorted(set(config.stage_aliases) - set(stages)) if stages else []
        if unknown:
            raise NotFound(
                f"stage_aliases names stage(s) {', '.join(unknown)} that are not in "
                f"stages {stages}",
                backend=self.name,
                hint="fix [backends.registry] stage_aliases in the config",
            )
        self.aliases: dict[str, str] = {s: config.stage_aliases.get(s, s) for s in stages}
        self.aliases.update(config.stage_aliases)
        for stage, alias in self.aliases.items():
            problem = alias_problem(alias)
            if problem:
                raise NotFound(
                    f"stage {stage!r} can not be an MLflow alias as it is: {problem}",
                    backend=self.name,
                    hint=f'map it in [backends.registry] stage_aliases = {{{stage} = "..."}}',
                )
        self.stage_of: dict[str, str] = {a: s for s, a in self.aliases.items()}
        if len(self.stage_of) < len(self.aliases):
            alias = next(a for a in self.stage_of if list(self.aliases.values()).count(a) > 1)
            shared = [s for s, a in self.aliases.items() if a == alias]
            raise NotFound(
                f"stages {' and '.join(shared)} would share the MLflow alias {alias!r}",
                backend=self.name,
                hint="give every stage its own alias in [backends.registry] stage_aliases",
            )
        self._stage_order = {s: i for i, s in enumerate(self.aliases)}
        self.config = config
        self.http = MlflowTransport(
            config.url,
            timeout=config.timeout_seconds or ctx.timeout,
            auth=config.auth,
            credentials=config,
            credential_name=credential_name(config, "mlflow"),
            verify=config.verify_tls,
            transport=transport,
        )
        self.runs = RunFactsCache(self.http)

    # -- reading ----------------------------------------------------------------------------

    async def check(self) -> str:
        version, count = await asyncio.gather(self.http.version(), self._count_models())
        label = f"MLflow {version}" if version else "MLflow"
        return (
            f"{label} at {self.http.shown_url}: {count} registered models "
            f"({self.http.describe_auth()})"
        )

    async def _count_models(self) -> int:
        return len([rm async for rm in self._registered_models(names_only=True)])

    async def _registered_models(
        self, *, names_only: bool = False
    ) -> AsyncIterator[RegisteredModel]:
        token = ""
        while True:
            params: dict[str, Any] = {"max_results": 1000 if names_only else self.config.page_size}
            if self.config.model_filter:
                params["filter"] = self.config.model_filter
            if token:
                params["page_token"] = token
            page = await self.http.get("registered-models/search", RegisteredModelPage, params)
            for rm in page.registered_models:
                yield rm
            token = page.next_page_token
            if not token or not page.registered_models:
                return

    async def models(self) -> tuple[Model, ...]:
        found = [to_model(rm) async for rm in self._registered_models()]
        return tuple(sorted(found, key=lambda m: m.name))

    async def _registered(self, model: str) -> RegisteredModel:
        try:
            reply = await self.http.get(
                "registered-models/get", RegisteredModelReply, {"name": model}
            )
        except NotFound:
            raise NotFound(
                f"no registered model {model!r} in MLflow at {self.http.shown_url}",
                backend=self.name,
                hint="check the name (MLflow names are case-sensitive)",
            ) from None
        return reply.registered_model

    def _listing(self, model: str) -> asyncio.Future[list[RestVersion]]:
        """Every version of ``model`` (paged search): the listing running, else a new one."""
        return self.http.shared(("versions", model), lambda: self._list_versions(model))

    async def _rest_versions(self, model: str) -> list[RestVersion]:
        return await asyncio.shield(self._listing(model))

    async def _list_versions(self, model: str) -> list[RestVersion]:
        found = [v for v in await self._search_versions(f"name={_quote(model)}") if v.name == model]
        found.sort(key=_version_order)
        return found

    async def versions(self, model: str) -> tuple[ModelVersion, ...]:
        listing = self._listing(model)  # started first: stages() of the same view reads it too
        rm, rest = await asyncio.gather(self._registered(model), asyncio.shield(listing))
        stages, aliases = self._aliased(rm)
        facts: dict[str, RunFacts] = {}
        if self.config.run_details:
            facts = await self.runs.facts(v.run_id for v in rest)
        order = self._stage_order
        return tuple(
            to_version(
                v,
                facts.get(v.run_id),
                sorted(stages.get(v.version, ()), key=order.__getitem__),
                aliases.get(v.version, ()),
            )
            for v in rest
        )

    async def stages(self, model: str) -> tuple[StageAssignment, ...]:
        # versions() of the same view (started just before) lists every version with its tags:
        # the assignment tags are read there instead of one model-versions/get per stage
        listing = self.http.in_flight(("versions", model))
        rm = await self._registered(model)
        pointed = {a.alias: a.version for a in rm.aliases}
        wanted = [(s, a) for s, a in self.aliases.items() if a in pointed]
        tagged: list[dict[str, str] | BaseException] | None
        tagged = await self._borrowed_tags(listing, [pointed[a] for _, a in wanted])
        if tagged is None:
            tagged = await asyncio.gather(
                *(self._version_tags(model, pointed[a]) for _, a in wanted),
                return_exceptions=True,
            )
        out = []
        for (stage, alias), tags in zip(wanted, tagged, strict=True):
            if isinstance(tags, BaseException):
                if not isinstance(tags, NotFound):
                    raise tags
                tags = {}
            out.append(to_assignment(model, stage, alias, pointed[alias], tags))
        return tuple(out)

    async def _borrowed_tags(
        self, listing: asyncio.Future[Any] | None, versions: list[str]
    ) -> list[dict[str, str] | BaseException] | None:
        """Tags of ``versions`` from a listing that was running when stages() began; None
        when there was none (or it failed)."""
        if listing is None or not versions:
            return None
        try:
            rest: list[RestVersion] = await asyncio.shield(listing)
        except BackendError:
            return None
        tags_of = {v.version: v.tag_map() for v in rest}
        return [tags_of.get(v, {}) for v in versions]

    async def _version_tags(self, model: str, version: str) -> dict[str, str]:
        reply = await self.http.get(
            "model-versions/get", ModelVersionReply, {"name": model, "version": version}
        )
        return reply.model_version.tag_map()

    # -- many models at once (console.ports RegistrySnapshots, VersionCompletion) ----------

    async def snapshot(self, models: Sequence[str]) -> dict[str, RegistryEntry | BackendError]:
        """versions() and stages() of many models in a few requests: the registered models and
        their aliases from one search, their versions from searches over many names at once.
        The versions leave out their runs' facts (one more request per 100 runs): ask
        :meth:`complete_versions` for the versions shown."""
        wanted = list(dict.fromkeys(models))
        listed = {rm.name: rm async for rm in self._registered_models()}
        out: dict[str, RegistryEntry | BackendError] = {}
        found: dict[str, RegisteredModel] = {}
        for name, rm in zip(
            wanted,
            await asyncio.gather(*(self._listed_or_get(n, listed) for n in wanted)),
            strict=True,
        ):
            if isinstance(rm, BackendError):
                out[name] = rm
            else:
                found[name] = rm
        versions = await self._versions_of(list(found))
        complete = not self.config.run_details
        for name, rm in found.items():
            rest = versions.get(name, [])
            if isinstance(rest, BackendError):
                out[name] = rest
                continue
            stages, aliases = self._aliased(rm)
            order = self._stage_order
            entry_versions = tuple(
                listed_version(
                    v,
                    sorted(stages.get(v.version, ()), key=order.__getitem__),
                    aliases.get(v.version, ()),
                )
                for v in rest
            )
            tags_of = {v.version: v.tag_map() for v in rest}
            pointed = {a.alias: a.version for a in rm.aliases}
            entry_stages = tuple(
                to_assignment(name, stage, alias, pointed[alias], tags_of.get(pointed[alias], {}))
                for stage, alias in self.aliases.items()
                if alias in pointed
            )
            has_runs = any(v.run_id for v in rest)
            out[name] = RegistryEntry(
                versions=entry_versions, stages=entry_stages, complete=complete or not has_runs
            )
        return out

    async def complete_versions(
        self, versions: Sequence[ModelVersion]
    ) -> dict[tuple[str, str], ModelVersion | BackendError]:
        """The versions of a snapshot with their runs' facts: runs/search over many run ids."""
        runs: dict[str, RunFacts] = {}
        if self.config.run_details:
            runs = await self.runs.facts(v.tags.get("mlflow.run_id", "") for v in versions)
        return {
            (v.model, v.version): with_run(v, runs.get(v.tags.get("mlflow.run_id", "")))
            for v in versions
        }

    async def _listed_or_get(
        self, name: str, listed: dict[str, RegisteredModel]
    ) -> RegisteredModel | BackendError:
        """The registered model from the search, else asked by name (a filter may hide it)."""
        if name in listed:
            return listed[name]
        try:
            return await self._registered(name)
        except BackendError as exc:
            return exc

    def _aliased(self, rm: RegisteredModel) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
        """(version -> its stages, version -> its aliases) from the model's aliases."""
        stages: dict[str, list[str]] = {}
        aliases: dict[str, list[str]] = {}
        for a in rm.aliases:
            aliases.setdefault(a.version, []).append(a.alias)
            if a.alias in self.stage_of:
                stages.setdefault(a.version, []).append(self.stage_of[a.alias])
        return stages, aliases

    async def _versions_of(self, names: list[str]) -> dict[str, list[RestVersion] | BackendError]:
        """Every version of each model (oldest first): ``name IN (...)`` searches of up to
        NAMES_PER_SEARCH models each; one search per model where the server refuses IN."""
        chunks = [names[i : i + NAMES_PER_SEARCH] for i in range(0, len(names), NAMES_PER_SEARCH)]
        out: dict[str, list[RestVersion] | BackendError] = {}
        for part in await asyncio.gather(*map(self._search_names, chunks)):
            out.update(part)
        return out

    async def _search_names(self, names: list[str]) -> dict[str, list[RestVersion] | BackendError]:
        try:
            found = await self._search_versions(
                f"name IN ({', '.join(_quote(n) for n in names)})"
                if len(names) > 1
                else f"name={_quote(names[0])}",
            )
        except ServerSaid:  # an older server without IN for names: one search each
            single = await asyncio.gather(
                *(self._search_versions(f"name={_quote(n)}") for n in names),
                return_exceptions=True,
            )
            return {
                n: r if isinstance(r, list | BackendError) else _unexpected(r)
                for n, r in zip(names, single, strict=True)
            }
        by_name: dict[str, list[RestVersion]] = {n: [] for n in names}
        for v in found:
            if v.name in by_name:
                by_name[v.name].append(v)
        for listing in by_name.values():
            listing.sort(key=_version_order)
        return dict(by_name)

    async def _search_versions(self, query: str) -> list[RestVersion]:
        """Every model version ``query`` matches, across pages."""
        found: list[RestVersion] = []
        token = ""
        while True:
            params: dict[str, Any] = {"filter": query, "max_results": self.config.page_size}
            if token:
                params["page_token"] = token
            page = await self.http.get("model-versions/search", ModelVersionPage, params)
            found.extend(page.model_versions)
            token = page.next_page_token
            if not token or not page.model_versions:
                return found

    async def history(self, model: str) -> tuple[RegistryEvent, ...]:
        """Registrations and the console's own stage assignments (from version tags)."""
        await self._registered(model)
        return history_events(model, await self._rest_versions(model), self.aliases)

    # -- writing ----------------------------------------------------------------------------

    async def _alias_target(self, model: str, alias: str) -> tuple[str | None, dict[str, str]]:
        """(version the alias points at or None, that version's tags)."""
        try:
            reply = await self.http.get(
                "registered-models/alias", ModelVersionReply, {"name": model, "alias": alias}
            )
        except ServerSaid as exc:
            if exc.code == "INVALID_PARAMETER_VALUE" and "not found" in str(exc).lower():
                return None, {}
            raise
        except NotFound:
            await self._registered(model)  # says "no registered model" if that is the cause
            return None, {}
        return reply.model_version.version, reply.model_version.tag_map()

    def _alias(self, stage: str) -> str:
        alias = self.aliases.get(stage)
        if alias is None:
            raise NotFound(
                f"stage {stage!r} has no MLflow alias; known stages: {', '.join(self.aliases)}",
                backend=self.name,
                hint="add it to stages (or stage_aliases) in the config",
            )
        return alias

    def _conflict(
        self,
        model: str,
        stage: str,
        alias: str,
        expected: str | None,
        actual: str | None,
        tags: dict[str, str],
        *,
        after_write: bool,
    ) -> Conflict:
        by = tags.get(stage_tag(stage, "assigned_by"), "") if actual else ""
        at = tags.get(stage_tag(stage, "assigned_at"), "") if actual else ""
        who = f" (last console assignment: {by} at {at})" if by else " (moved outside the console)"
        if after_write:
            text = (
                f"concurrent change detected: right after setting alias {alias!r} of {model} "
                f"to {expected}, it points at {actual or 'nothing'}{who if actual else ''}"
            )
        else:
            text = (
                f"stage {stage} of {model} (alias {alias!r}) now points at "
                f"{actual or 'nothing'}, not {expected or 'nothing'}{who if actual else ''}"
            )
        return Conflict(
            text,
            backend=self.name,
            hint="reload the model and review the change before trying again",
            expected=expected,
            actual=actual,
            changed_by=by,
        )

    async def assign(
        self,
        model: str,
        version: str,
        stage: str,
        *,
        actor: str,
        message: str = "",
        expected: str | None = None,
    ) -> StageAssignment:
        """Point the stage's alias at ``version`` if it still shows ``expected`` (re-read
        before and after the write; MLflow has no compare-and-set). Never retried."""
        alias = self._alias(stage)
        (current, tags), _ = await asyncio.gather(
            self._alias_target(model, alias), self._require_version(model, version)
        )
        if current != expected:
            raise self._conflict(model, stage, alias, expected, current, tags, after_write=False)
        if current == version:
            return to_assignment(model, stage, alias, version, tags)
        body = {"name": model, "alias": alias, "version": version}
        try:
            await self.http.write("POST", "registered-models/alias", body)
        except Unreachable:
            if (await self._alias_target(model, alias))[0] != version:  # did it land anyway?
                raise
        now, now_tags = await self._alias_target(model, alias)
        if now != version:
            raise self._conflict(model, stage, alias, version, now, now_tags, after_write=True)
        at = datetime.now(UTC).replace(microsecond=0)
        await self._record(model, version, stage, alias, actor, at, message)
        return StageAssignment(
            model=model,
            stage=stage,
            version=version,
            assigned_by=actor,
            assigned_at=at,
            ref=f"alias {alias}",
        )

    async def unassign(
        self, model: str, stage: str, *, actor: str, expected: str | None, message: str = ""
    ) -> StageAssignment:
        """Delete the stage's alias if it still points at ``expected`` (re-read before/after)."""
        alias = self._alias(stage)
        current, tags = await self._alias_target(model, alias)
        if current != expected:
            raise self._conflict(model, stage, alias, expected, current, tags, after_write=False)
        if current is None:
            return StageAssignment(model=model, stage=stage, version=None)
        await self.http.write("DELETE", "registered-models/alias", {"name": model, "alias": alias})
        now, now_tags = await self._alias_target(model, alias)
        if now is not None:
            raise self._conflict(model, stage, alias, None, now, now_tags, after_write=True)
        return StageAssignment(model=model, stage=stage, version=None, ref=f"alias {alias}")

    async def _require_version(self, model: str, version: str) -> None:
        try:
            await self.http.get(
                "model-versions/get", ModelVersionReply, {"name": model, "version": version}
            )
        except NotFound:
            await self._registered(model)
            raise NotFound(
                f"{model} has no version {version!r} in MLflow at {self.http.shown_url}",
                backend=self.name,
            ) from None

    async def _record(
        self,
        model: str,
        version: str,
        stage: str,
        alias: str,
        actor: str,
        at: datetime,
        message: str,
    ) -> None:
        """Tag the version with who/when/why; the alias already moved, so say what is left."""
        tags = {
            stage_tag(stage, "assigned_at"): at.isoformat(),
            stage_tag(stage, "assigned_by"): actor,
            stage_tag(stage, "message"): message[:MESSAGE_LIMIT],
        }
        for key, value in tags.items():
            try:
                await self.http.write(
                    "POST",
                    "model-versions/set-tag",
                    {"name": model, "version": version, "key": key, "value": value},
                )
            except BackendError as exc:
                raise Unreachable(
                    f"alias {alias!r} of {model} now points at {version}, but recording tag "
                    f"{key} failed: {exc.message}",
                    backend=self.name,
                    hint=f"the promotion is done; to complete the record set tag {key}={value!r} "
                    f"on {model} version {version}",
                ) from None

    async def aclose(self) -> None:
        await self.http.aclose()


__all__ = ["MlflowRegistry"]
