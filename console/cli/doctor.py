"""`doctor` and `plugins`: what is installed, what is configured, and what answers."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from console.config import KIND_NAMES, ConfigError, ConsoleConfig, config_label
from console.logs import excerpt
from console.plugins import PluginCatalog, discover
from console.ports import AuditStore, Backend, BackendError
from console.services.overview import describe_error
from console.services.workspace import Workspace


def plugins_doc(catalog: PluginCatalog) -> dict[str, Any]:
    return {
        "plugins": [
            {
                "name": p.name,
                "kinds": sorted(p.kinds),
                "api_version": p.api_version,
                "distribution": p.distribution,
                "description": p.description,
            }
            for p in sorted(catalog.plugins.values(), key=lambda p: p.name)
        ],
        "problems": [
            {"entry_point": p.entry_point, "distribution": p.distribution, "reason": p.reason}
            for p in catalog.problems
        ],
    }


def render_plugins(*, as_json: bool) -> int:
    """Print installed plugins; exit 1 when some plugin could not be loaded."""
    doc = plugins_doc(discover())
    if as_json:
        print(json.dumps(doc, indent=2))
    else:
        width = max((len(p["name"]) for p in doc["plugins"]), default=4)
        for p in doc["plugins"]:
            kinds = ", ".join(p["kinds"])
            print(f"{p['name']:<{width}}  {kinds:<18} {p['description']}  [{p['distribution']}]")
        for prob in doc["problems"]:
            print(
                f"! {prob['entry_point']} ({prob['distribution'] or 'unknown'}): {prob['reason']}"
            )
    return 1 if doc["problems"] else 0


async def _check(
    kind: str, backend: Backend, timeout: float, config: ConsoleConfig | None = None
) -> tuple[bool, str]:
    try:
        return True, excerpt(await asyncio.wait_for(backend.check(), timeout), 500)
    except (BackendError, TimeoutError) as exc:
        return False, describe_error(exc, kind, timeout, config)[0]
    except Exception as exc:
        return False, describe_error(exc, kind, timeout, config)[0]


def identity_lines(config: ConsoleConfig) -> list[str]:
    """Who the console acts as, with the role the config gives, and why ``SUDO_USER`` was
    ignored when it was (docs/release.md, "Who is acting")."""
    from console import identity

    actor = identity.current_actor()
    role = identity.actor_role(actor, config.roles).replace("_", " ")
    out = [f"you:       {actor} ({role})"]
    _, ignored = identity.sudo_user()
    if ignored:
        out.append(f"identity:  {ignored}")
    return out


def stages_line(config: ConsoleConfig) -> str:
    """The stages, the production one, and where they came from."""
    origin = f"; from {config.stages_origin}" if config.stages_origin else ""
    return f"stages:    {', '.join(config.stages)} (production: {config.prod_stage}{origin})"


async def run_doctor(config: ConsoleConfig) -> int:
    """Check every configured backend concurrently; exit 0 when all answer, 1 otherwise."""
    from console.services.workspace import open_workspace

    print(f"config:    {config_label(config)}")
    print(f"workspace: {config.root}")
    for line in identity_lines(config):
        print(line)
    print(stages_line(config))
    print(f"state:     {config.state_path}")
    catalog = discover()
    for prob in catalog.problems:
        print(f"plugin !   {prob.entry_point}: {prob.reason}")
    try:
        ws = open_workspace(config, catalog)
    except ConfigError as exc:
        print(str(exc))
        return 2
    failures = len(catalog.problems)
    async with ws:
        kinds = [k for k in KIND_NAMES if k in ws.backends]
        results = await asyncio.gather(
            *(_check(k, ws.backends[k], config.timeout_seconds, config) for k in kinds)
        )
        checked = dict(zip(kinds, results, strict=True))
        for kind in KIND_NAMES:
            bcfg = config.backend(kind)
            if kind in checked:
                ok, text = checked[kind]
                mark = "ok  " if ok else "FAIL"
                failures += not ok
                print(f"{mark} {kind:<9} {bcfg.type if bcfg else '':<14} {text}")
            elif kind in ws.problems:
                failures += 1
                print(f"FAIL {kind:<9} {bcfg.type if bcfg else '':<14} {ws.problems[kind]}")
            else:
                print(f"--   {kind:<9} {'':<14} not configured")
        store = ws.audit
        if store is not None and checked.get("audit", (False, ""))[0]:
            ok, text = await _anchor_check(config, store)
            failures += not ok
            print(f"{'ok  ' if ok else 'FAIL'} {'anchor':<9} {'git ref':<14} {text}")
        failures += await team_section(config, ws)
    return 1 if failures else 0


async def _anchor_check(config: ConsoleConfig, store: AuditStore) -> tuple[bool, str]:
    """Whether the audit store is the log anchored in the workspace (as actions check it),
    and where its location came from when a config outside the workspace chose it."""
    from console.audit.anchor import GitAnchor

    where = ""
    audit = config.backend("audit")
    source = config.source
    outside = source is not None and not source.resolve().is_relative_to(config.root.resolve())
    if audit is not None and audit.options.get("path") and outside:
        where = f"; the log's location ({audit.options['path']}) is set by {source}"
    try:
        anchor = await GitAnchor(config.root, store, timeout=config.timeout_seconds).prove()
    except Exception as exc:
        return False, f"{exc}{where}"
    if anchor is None:
        return True, f"the audit log has never been anchored{where}"
    return True, f"the audit log extends its anchor of {anchor.count} records{where}"


def _line(mark: str, topic: str, text: str) -> None:
    print(f"{mark:<4} {topic:<9} {'':<14} {text}")


async def team_section(config: ConsoleConfig, ws: Workspace) -> int:
    """What the team setting rests on (docs/team.md): the audit store's roles and grants, the
    four-eyes caveat of a SQLite store, the group workspace. Returns the failures."""
    from console.identity import current_actor, principal
    from console.services.team import four_eyes_caveat
    from console.shared_workspace import check_shared

    failures = 0
    store = ws.audit
    check = getattr(store, "team_check", None)
    if check is not None:
        try:
            found = await asyncio.wait_for(
                check(principal(current_actor())), config.timeout_seconds * 3
            )
        except Exception as exc:
            found = [(False, describe_error(exc, "audit", config.timeout_seconds, config)[0])]
        for ok, text in found:
            failures += not ok
            _line("ok" if ok else "FAIL", "team", text)
    caveat = four_eyes_caveat(config)
    if caveat:
        _line("note", "team", caveat)
    checks = asyncio.to_thread(check_shared, config, store, config.timeout_seconds)
    for finding in await checks:
        failures += finding.mark == "FAIL"
        _line(finding.mark, "shared", finding.text)
    return failures


async def run_init_shared(config: ConsoleConfig, group: str) -> int:
    """``init --shared GROUP``: set the group workspace up, say what changed and what is
    still missing; 0 when nothing is."""
    from console.services.workspace import open_workspace
    from console.shared_workspace import SharedError, check_shared, init_shared

    try:
        ws = open_workspace(config)
    except ConfigError as exc:
        print(str(exc))
        return 2
    async with ws:
        store = ws.audit
        if (
            store is not None and getattr(store, "path", None) is not None
        ):  # create the SQLite log now, to share it
            try:
                await asyncio.wait_for(store.head(), config.timeout_seconds * 3)
            except Exception as exc:
                print(describe_error(exc, "audit", config.timeout_seconds, config)[0])
                return 1
            await store.aclose()
        try:
            done = await asyncio.to_thread(init_shared, config, group, store)
        except (SharedError, OSError) as exc:
            print(f"init --shared {group}: {exc}")
            return 1
        for line in done:
            print(f"changed: {line}")
        if not done:
            print(f"nothing to change: {config.root} is a group workspace of {group}")
        left = [f for f in await asyncio.to_thread(check_shared, config, store) if f.mark == "FAIL"]
        for finding in left:
            print(f"FAIL {finding.text}")
    return 1 if left else 0
