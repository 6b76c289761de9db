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


def stages_line(config: ConsoleConfig) -> str:
    """The stages, the production one, and where they came from."""
    origin = f"; from {config.stages_origin}" if config.stages_origin else ""
    return f"stages:    {', '.join(config.stages)} (production: {config.prod_stage}{origin})"


async def run_doctor(config: ConsoleConfig) -> int:
    """Check every configured backend concurrently; exit 0 when all answer, 1 otherwise."""
    from console.services.workspace import open_workspace

    print(f"config:    {config_label(config)}")
    print(f"workspace: {config.root}")
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
    return 1 if failures else 0
