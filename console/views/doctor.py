"""`doctor` and `plugins`: what is installed, what is configured, and what answers."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from console.config import KIND_NAMES, ConfigError, ConsoleConfig, config_label
from console.plugins import PluginCatalog, discover
from console.ports import BackendError
from console.services.overview import describe_error


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
    kind: str, backend: Any, timeout: float, config: ConsoleConfig | None = None
) -> tuple[bool, str]:
    try:
        return True, await asyncio.wait_for(backend.check(), timeout)
    except (BackendError, TimeoutError) as exc:
        return False, describe_error(exc, kind, timeout, config)[0]
    except Exception as exc:
        return False, describe_error(exc, kind, timeout, config)[0]


async def run_doctor(config: ConsoleConfig) -> int:
    """Check every configured backend concurrently; exit 0 when all answer, 1 otherwise."""
    from console.services.workspace import open_workspace

    print(f"config:    {config_label(config)}")
    print(f"workspace: {config.root}")
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
        if checked.get("audit", (False, ""))[0]:
            ok, text = await _anchor_check(config, ws.backends["audit"])
            failures += not ok
            print(f"{'ok  ' if ok else 'FAIL'} {'anchor':<9} {'git ref':<14} {text}")
    return 1 if failures else 0


async def _anchor_check(config: ConsoleConfig, store: Any) -> tuple[bool, str]:
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
