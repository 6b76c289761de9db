"""The ``gitlab-ci`` backend: CIProvider (pipelines and jobs of a commit) and Deployer (a
pipeline trigger with variables, then the pipeline it created is followed)."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from cd4ml_console_gitlab_ci import GitLabCIConfig
from cd4ml_console_gitlab_ci.mapping import Job, Pipeline, parse_items, pipeline_to_domain
from console.domain import CIRun
from console.plugins import BackendContext
from console.plugins import http as tp
from console.plugins.credentials import (
    Credential,
    CredentialOptions,
    alookup,
    credential_name,
    require,
)
from console.plugins.deploy import fill
from console.ports import BackendError, InvalidResponse

CACHE_SIZE = 1024
JOB_FETCHES = 4
sleep = asyncio.sleep  # module attributes so tests can drive time
monotonic = time.monotonic


class _Lru(OrderedDict[Any, Any]):
    """A bounded mapping that forgets the least recently used entry."""

    def get_fresh(self, key: Any) -> Any | None:
        found = self.get(key)
        if found is not None:
            self.move_to_end(key)
        return found

    def put(self, key: Any, value: Any) -> None:
        self[key] = value
        self.move_to_end(key)
        while len(self) > CACHE_SIZE:
            self.popitem(last=False)


def trigger_form(token: Credential, ref: str, variables: dict[str, str]) -> dict[str, str]:
    """The form of ``POST /trigger/pipeline``; built inline so no caller frame holds the token."""
    form = {f"variables[{k}]": v for k, v in variables.items()}
    return {"token": token.secret.get_secret_value(), "ref": ref, **form}


class GitLabCI:
    """CI pipelines and deploys of one GitLab project through the REST API v4."""

    name = "gitlab-ci"

    def __init__(self, config: GitLabCIConfig, ctx: BackendContext) -> None:
        self.config = config
        self.ctx = ctx
        self.project_path = f"/projects/{quote(config.project, safe='')}"
        self.api = tp.HttpApi(
            backend=self.name,
            base_url=config.url.rstrip("/") + "/api/v4",
            timeout=config.request_timeout_seconds or ctx.timeout,
            credential=self._credential,
            headers={"Accept": "application/json", "User-Agent": "cd4ml-console"},
            auth_hint=f"run `cd4ml-console login {credential_name(config, self.name)}` with a "
            'token that has the read_api scope (api to deploy with trigger = "api")',
            forbidden_hint="the token's user lacks access to the project's pipelines",
        )
        self._runs: _Lru = _Lru()  # sha -> (monotonic time, runs) of finished pipelines
        self._jobs: _Lru = _Lru()  # pipeline id -> jobs of a finished pipeline
        self._slots = asyncio.Semaphore(JOB_FETCHES)

    async def _credential(self) -> Credential | None:
        name = credential_name(self.config, self.name)
        return require(await alookup(name, self.config, timeout=self.api.timeout))

    @property
    def trigger_credential_name(self) -> str:
        return (
            self.config.trigger_credential or f"{credential_name(self.config, self.name)}-trigger"
        )

    async def _trigger_token(self) -> Credential:
        c = self.config
        options = CredentialOptions(
            credential=self.trigger_credential_name,
            token_env=c.trigger_token_env,
            credentials_file=c.credentials_file,
            use_keyring=c.use_keyring,
            allow_plaintext_keyring=c.allow_plaintext_keyring,
        )
        try:
            found = await alookup(self.trigger_credential_name, options, timeout=self.api.timeout)
            return require(found)
        except BackendError as exc:
            exc.backend = self.name
            raise

    # -- reading ------------------------------------------------------------------------

    async def _pages(self, path: str, params: dict[str, Any]) -> AsyncIterator[list[Any]]:
        """Each page (a JSON array), following ``Link: rel="next"`` on the same host."""
        url: str | None = path
        query: dict[str, Any] | None = {**params, "per_page": self.config.per_page}
        for _ in range(self.config.max_pages):
            assert url is not None
            resp = await self.api.get(url, params=query)
            doc = self.api.json_of(resp, "a list")
            if not isinstance(doc, list):
                raise InvalidResponse(
                    f"{self.api.where(url)} answered with something that is not a list",
                    backend=self.name,
                    hint="is url the GitLab instance (without /api/v4)?",
                )
            yield doc
            url = resp.links.get("next", {}).get("url")
            if not url:
                return
            if not self.api.same_origin(url):
                raise InvalidResponse(
                    f"{self.api.where(path)} pointed its next page at another host "
                    f"({tp.safe_url(url)}); not following it with the token",
                    backend=self.name,
                )
            query = None

    def _parse(self, items: Any, model: Any, path: str) -> list[Any]:
        try:
            return parse_items(items, model, "items")
        except ValueError as exc:
            raise InvalidResponse(
                f"{self.api.where(path)} returned an unexpected object: {exc}",
                backend=self.name,
            ) from None

    async def pipelines(self, commit: str) -> list[Pipeline]:
        """The pipelines of ``commit`` (from the configured sources), newest first."""
        path = f"{self.project_path}/pipelines"
        found: list[Pipeline] = []
        async for page in self._pages(path, {"sha": commit, "order_by": "id", "sort": "desc"}):
            found += self._parse(page, Pipeline, path)
        sources = set(self.config.sources)
        found = [p for p in found if p.sha == commit and (not sources or p.source in sources)]
        return sorted(found, key=lambda p: (p.created_at, p.id), reverse=True)

    async def jobs(self, pipeline: Pipeline) -> list[Job]:
        """The jobs of ``pipeline`` (retried ones excluded), cached once it is finished."""
        cached = self._jobs.get_fresh(pipeline.id)
        if cached is not None:
            return list(cached)
        path = f"{self.project_path}/pipelines/{pipeline.id}/jobs"
        found: list[Job] = []
        async with self._slots:
            async for page in self._pages(path, {}):
                found += self._parse(page, Job, path)
        if pipeline.finished:
            self._jobs.put(pipeline.id, tuple(found))
        return found

    async def runs_for(self, commit: str) -> list[CIRun]:
        """CI runs (pipelines) for ``commit`` with their jobs, newest first."""
        cached = self._runs.get_fresh(commit)
        if cached is not None and monotonic() - cached[0] < self.config.cache_seconds:
            return list(cached[1])
        pipelines = await self.pipelines(commit)
        if self.config.jobs:
            all_jobs = await asyncio.gather(*(self.jobs(p) for p in pipelines))
        else:
            all_jobs = [[] for _ in pipelines]
        out = [pipeline_to_domain(p, j) for p, j in zip(pipelines, all_jobs, strict=True)]
        if pipelines and all(p.finished for p in pipelines):
            self._runs.put(commit, (monotonic(), tuple(out)))
        return out

    async def pipeline(self, pipeline_id: int) -> Pipeline:
        """One pipeline by id."""
        path = f"{self.project_path}/pipelines/{pipeline_id}"
        doc = self.api.json_of(await self.api.get(path), "a pipeline")
        return self._parse([doc], Pipeline, path)[0]

    # -- deploying ----------------------------------------------------------------------

    def variables(self, model: str, version: str, stage: str, actor: str) -> dict[str, str]:
        """The deploy pipeline's CI/CD variables with the placeholders substituted."""
        return {
            name: fill(template, model, version, stage, actor)
            for name, template in self.config.deploy_variables.items()
        }

    async def deploy(self, model: str, version: str, stage: str, *, actor: str) -> str:
        """Create the deploy pipeline once, then follow it until it finishes."""
        started = monotonic()
        variables = self.variables(model, version, stage, actor)
        ref = self.config.deploy_ref
        if self.config.trigger == "trigger_token":
            token = await self._trigger_token()
            self.api.keep_secret(token)  # a peer echoing the form must not show it
            path = f"{self.project_path}/trigger/pipeline"
            resp = await self.api.send(
                "POST",
                path,
                data=trigger_form(token, ref, variables),
                authenticate=False,
                body_credential=token,
            )
        else:
            path = f"{self.project_path}/pipeline"
            body = {"ref": ref, "variables": [{"key": k, "value": v} for k, v in variables.items()]}
            resp = await self.api.send("POST", path, json=body)
        doc = self.api.json_of(resp, "the created pipeline")
        try:
            created = self._parse([doc], Pipeline, path)[0]
        except InvalidResponse as exc:
            exc.message += "; a pipeline may have been created"
            raise
        pipeline = created
        if self.config.wait:
            try:
                pipeline = await self._follow(created, started)
            except BackendError as exc:
                exc.message = (
                    f"created pipeline {created.id} on {ref}, then: {exc.message}; "
                    "the outcome is unknown"
                )
                raise
        return self._outcome(pipeline)

    async def _follow(self, pipeline: Pipeline, started: float) -> Pipeline:
        """Poll ``pipeline`` until it finishes or the deploy's time is up."""
        return await tp.poll_until(
            pipeline,
            lambda p: self.pipeline(p.id),
            lambda p: p.finished,
            deadline=started + self.config.timeout_seconds,
            poll_seconds=self.config.poll_seconds,
            still=lambda p: (
                f"pipeline {p.id} is still {p.status} after "
                f"{self.config.timeout_seconds:g}s: {p.web_url}"
            ),
            backend=self.name,
            hint="follow it in GitLab; the registry already moved",
            sleep=sleep,
            clock=monotonic,
        )

    def _outcome(self, pipeline: Pipeline) -> str:
        label = f"deploy pipeline {pipeline.id}"
        if not pipeline.finished:
            return f"{label} {pipeline.status}: {pipeline.web_url}"
        if pipeline.status == "success":
            return f"{label} succeeded: {pipeline.web_url}"
        if pipeline.status == "manual":
            raise BackendError(
                f"{label} waits for a manual job: {pipeline.web_url}",
                backend=self.name,
                hint="start the manual job in GitLab to finish the deploy",
            )
        raise BackendError(
            f"{label} {pipeline.status}: {pipeline.web_url}",
            backend=self.name,
            hint="read the pipeline's jobs; the registry already moved",
        )

    # -- life cycle ---------------------------------------------------------------------

    async def check(self) -> str:
        """The project is readable with the token."""
        doc = self.api.json_of(await self.api.get(self.project_path), "a project")
        name = doc.get("path_with_namespace", self.config.project) if isinstance(doc, dict) else "?"
        said = f"GitLab project {name} at {self.api.safe_base}"
        if self.config.trigger == "trigger_token":
            token = await self._trigger_token()
            said += f"; trigger token: {token.describe()}"
        return said

    async def aclose(self) -> None:
        await self.api.aclose()

    def __repr__(self) -> str:
        return f"GitLabCI({self.config.project!r}, {self.api.safe_base!r})"
