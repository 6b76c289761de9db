"""The ``github-actions`` backend: CIProvider (runs and jobs of a commit) and Deployer
(``workflow_dispatch``, then the run it started is found and followed)."""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

import httpx

from cd4ml_console_github_actions import GitHubActionsConfig
from cd4ml_console_github_actions.mapping import (
    Job,
    WorkflowRun,
    parse_items,
    run_to_domain,
)
from console.domain import CIJob, CIRun
from console.plugins import BackendContext
from console.plugins import http as tp
from console.plugins.credentials import Credential, alookup, credential_name, require
from console.plugins.deploy import fill
from console.ports import BackendError, InvalidResponse, NotFound

CACHE_SIZE = 1024
JOB_FETCHES = 4  # runs whose jobs are read at once
CLOCK_SKEW = timedelta(seconds=30)
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


class GitHubActions:
    """CI runs and deploys of one GitHub repository through the REST API."""

    name = "github-actions"

    def __init__(self, config: GitHubActionsConfig, ctx: BackendContext) -> None:
        self.config = config
        self.ctx = ctx
        self.repo_path = f"/repos/{config.repository}"
        self.api = tp.HttpApi(
            backend=self.name,
            base_url=config.api_url,
            timeout=config.request_timeout_seconds or ctx.timeout,
            credential=self._credential,
            headers={
                "Accept": "application/vnd.github+json",
                "X-GitHub-Api-Version": config.api_version,
                "User-Agent": "cd4ml-console",
            },
            auth_hint=f"run `cd4ml-console login {credential_name(config, self.name)}` with a "
            "token that can read Actions (and write them, to deploy)",
            forbidden_hint="the token lacks a permission: Actions read (CI) or write (deploy)",
        )
        self._runs: _Lru = _Lru()  # commit -> (monotonic time, runs) of finished run sets
        self._jobs: _Lru = _Lru()  # (run id, attempt) -> jobs of a finished run
        self._slots = asyncio.Semaphore(JOB_FETCHES)

    async def _credential(self) -> Credential | None:
        name = credential_name(self.config, self.name)
        return require(await alookup(name, self.config, timeout=self.api.timeout))

    # -- reading ------------------------------------------------------------------------

    async def _pages(self, path: str, params: dict[str, Any], key: str) -> AsyncIterator[list[Any]]:
        """The ``key`` list of each page, following ``Link: rel="next"`` on the same host."""
        url: str | None = path
        query: dict[str, Any] | None = {**params, "per_page": self.config.per_page}
        for _ in range(self.config.max_pages):
            assert url is not None
            resp = await self.api.get(url, params=query)
            doc = self.api.json_of(resp, f"a page of {key}")
            if not isinstance(doc, dict) or not isinstance(doc.get(key), list):
                raise InvalidResponse(
                    f"{self.api.where(url)} answered without a {key} list",
                    backend=self.name,
                    hint="is api_url the GitHub REST API root?",
                )
            yield doc[key]
            url = resp.links.get("next", {}).get("url")
            if not url:
                return
            if not self.api.same_origin(url):
                raise InvalidResponse(
                    f"{self.api.where(path)} pointed its next page at another host "
                    f"({tp.safe_url(url)}); not following it with the token",
                    backend=self.name,
                )
            query = None  # the next link carries the query

    def _parse(self, items: Any, model: Any, path: str) -> list[Any]:
        try:
            return parse_items(items, model, "items")
        except ValueError as exc:
            raise InvalidResponse(
                f"{self.api.where(path)} returned an unexpected object: {exc}",
                backend=self.name,
            ) from None

    async def workflow_runs(self, commit: str) -> list[WorkflowRun]:
        """Every workflow run for ``commit`` (filtered by ``workflows``), newest first."""
        path = f"{self.repo_path}/actions/runs"
        params = {"head_sha": commit, "exclude_pull_requests": "true"}
        runs: list[WorkflowRun] = []
        async for page in self._pages(path, params, "workflow_runs"):
            runs += self._parse(page, WorkflowRun, path)
        runs = [r for r in runs if r.head_sha == commit and r.matches(self.config.workflows)]
        return sorted(runs, key=lambda r: (r.created_at, r.id), reverse=True)

    async def jobs(self, run: WorkflowRun) -> tuple[CIJob, ...]:
        """The jobs of ``run``'s latest attempt (cached once the run is finished)."""
        key = (run.id, run.run_attempt)
        cached = self._jobs.get_fresh(key)
        if cached is not None:
            return tuple(cached)
        path = f"{self.repo_path}/actions/runs/{run.id}/jobs"
        found: list[Job] = []
        async with self._slots:
            async for page in self._pages(path, {"filter": "latest"}, "jobs"):
                found += self._parse(page, Job, path)
        jobs = tuple(j.to_domain() for j in found)
        if run.completed:
            self._jobs.put(key, jobs)
        return jobs

    async def runs_for(self, commit: str) -> list[CIRun]:
        """CI runs for ``commit`` with their jobs, newest first."""
        cached = self._runs.get_fresh(commit)
        if cached is not None and monotonic() - cached[0] < self.config.cache_seconds:
            return list(cached[1])
        runs = await self.workflow_runs(commit)
        if self.config.jobs:
            all_jobs = await asyncio.gather(*(self.jobs(r) for r in runs))
        else:
            all_jobs = [() for _ in runs]
        out = [run_to_domain(r, j) for r, j in zip(runs, all_jobs, strict=True)]
        if runs and all(r.completed for r in runs):
            self._runs.put(commit, (monotonic(), tuple(out)))
        return out

    async def run(self, run_id: int) -> WorkflowRun:
        """One workflow run by id."""
        path = f"{self.repo_path}/actions/runs/{run_id}"
        resp = await self.api.get(path)
        return self._parse([self.api.json_of(resp, "a workflow run")], WorkflowRun, path)[0]

    # -- deploying ----------------------------------------------------------------------

    def _workflow_path(self) -> str:
        workflow = self.config.deploy_workflow
        if not workflow:
            raise BackendError(
                "no deploy workflow is configured",
                backend=self.name,
                hint='set deploy_workflow = "deploy.yml" in backends.deploy',
            )
        return f"{self.repo_path}/actions/workflows/{quote(workflow, safe='')}"

    def inputs(self, model: str, version: str, stage: str, actor: str) -> dict[str, str]:
        """The workflow_dispatch inputs with the placeholders substituted."""
        return {
            name: fill(template, model, version, stage, actor)
            for name, template in self.config.deploy_inputs.items()
        }

    async def _dispatch_runs(self, workflow_path: str) -> list[WorkflowRun]:
        params = {"event": "workflow_dispatch", "branch": self.config.deploy_ref, "per_page": 20}
        resp = await self.api.get(f"{workflow_path}/runs", params=params)
        doc = self.api.json_of(resp, "workflow runs")
        items = doc.get("workflow_runs") if isinstance(doc, dict) else None
        return self._parse(items, WorkflowRun, f"{workflow_path}/runs")

    async def deploy(self, model: str, version: str, stage: str, *, actor: str) -> str:
        """Dispatch the deploy workflow once, then follow the run it started."""
        started = monotonic()
        workflow_path = self._workflow_path()
        body: dict[str, Any] = {
            "ref": self.config.deploy_ref,
            "inputs": self.inputs(model, version, stage, actor),
        }
        known: set[int] = set()
        if self.config.return_run_details:
            body["return_run_details"] = True
        else:
            known = {r.id for r in await self._dispatch_runs(workflow_path)}
        dispatched_at = datetime.now(UTC)
        resp = await self.api.send("POST", f"{workflow_path}/dispatches", json=body)
        what = f"{self.config.deploy_workflow} on {self.config.deploy_ref}"
        run_id = self._run_id_of(resp)
        try:
            if run_id is None:
                run_id = await self._find_run(workflow_path, known, dispatched_at, started)
            if run_id is None:
                raise BackendError(
                    f"dispatched {what}, but its run did not appear within "
                    f"{self.config.find_run_seconds:g}s; the outcome is unknown",
                    backend=self.name,
                    hint=f"look at the workflow's runs on GitHub ({self.config.repository})",
                )
            run = await self._first_look(run_id, started)
            if self.config.wait:
                run = await self._follow(run, started)
        except BackendError as exc:
            if "dispatched" not in exc.message:
                exc.message = f"dispatched {what}, then: {exc.message}; the outcome is unknown"
            raise
        return self._outcome(run)

    def _run_id_of(self, resp: httpx.Response) -> int | None:
        """The run id a 200 answer to ``return_run_details`` names (None for 204)."""
        if resp.status_code == 204 or not resp.content:
            return None
        doc = self.api.json_of(resp, "the dispatched run's details")
        run_id = doc.get("workflow_run_id") if isinstance(doc, dict) else None
        if not isinstance(run_id, int) or isinstance(run_id, bool):
            raise InvalidResponse(
                f"{self.api.where(str(resp.request.url))} answered the dispatch without a "
                "workflow_run_id; the workflow was dispatched",
                backend=self.name,
                hint="set return_run_details = false for this server",
            )
        return run_id

    async def _find_run(
        self, workflow_path: str, known: set[int], since: datetime, started: float
    ) -> int | None:
        """The oldest new workflow_dispatch run created after ``since``, polled for a while."""
        deadline = started + self.config.find_run_seconds
        while True:
            fresh = [
                r
                for r in await self._dispatch_runs(workflow_path)
                if r.id not in known
                and r.event == "workflow_dispatch"
                and r.created_at >= since - CLOCK_SKEW
            ]
            if fresh:
                return min(fresh, key=lambda r: (r.created_at, r.id)).id
            if monotonic() + self.config.poll_seconds > deadline:
                return None
            await sleep(self.config.poll_seconds)

    async def _first_look(self, run_id: int, started: float) -> WorkflowRun:
        """The run just started; GitHub may need a moment before it can be read."""
        deadline = started + self.config.find_run_seconds
        while True:
            try:
                return await self.run(run_id)
            except NotFound:
                if monotonic() + self.config.poll_seconds > deadline:
                    raise
            await sleep(self.config.poll_seconds)

    async def _follow(self, run: WorkflowRun, started: float) -> WorkflowRun:
        """Poll ``run`` until it completes or the deploy's time is up."""
        return await tp.poll_until(
            run,
            lambda r: self.run(r.id),
            lambda r: r.completed,
            deadline=started + self.config.timeout_seconds,
            poll_seconds=self.config.poll_seconds,
            still=lambda r: (
                f"run #{r.run_number} is still {r.status} after "
                f"{self.config.timeout_seconds:g}s: {r.html_url}"
            ),
            backend=self.name,
            hint="follow it on GitHub; the registry already moved",
            sleep=sleep,
            clock=monotonic,
        )

    def _outcome(self, run: WorkflowRun) -> str:
        label = f"{run.name or self.config.deploy_workflow} run #{run.run_number}"
        if not run.completed:
            return f"{label} {run.status or 'queued'}: {run.html_url}"
        if run.conclusion == "success":
            return f"{label} succeeded: {run.html_url}"
        raise BackendError(
            f"{label} concluded {run.conclusion or 'without a conclusion'}: {run.html_url}",
            backend=self.name,
            hint="read the run's log; the registry already moved",
        )

    # -- life cycle ---------------------------------------------------------------------

    async def check(self) -> str:
        """The repository's workflows are readable (and the deploy workflow exists)."""
        resp = await self.api.get(f"{self.repo_path}/actions/workflows", params={"per_page": 1})
        doc = self.api.json_of(resp, "the workflow list")
        count = doc.get("total_count", "?") if isinstance(doc, dict) else "?"
        said = f"{self.config.repository} at {self.api.safe_base}: {count} workflows"
        if self.config.deploy_workflow:
            wf = self.api.json_of(await self.api.get(self._workflow_path()), "a workflow")
            state = wf.get("state", "?") if isinstance(wf, dict) else "?"
            said += f"; deploy workflow {self.config.deploy_workflow} is {state}"
        remaining = resp.headers.get("x-ratelimit-remaining")
        return said + (f"; {remaining} requests left this hour" if remaining else "")

    async def aclose(self) -> None:
        await self.api.aclose()

    def __repr__(self) -> str:
        return f"GitHubActions({self.config.repository!r}, {self.api.safe_base!r})"
