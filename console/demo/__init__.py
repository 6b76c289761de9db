"""The demo workspace: a deterministic git repo with models, data, GTO tags and CI records, a
model server with real Prometheus metrics, and a traffic generator (``cd4ml-console demo``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from console.demo.build import DemoError, DemoInfo, build_demo
    from console.demo.run import default_demo_dir, run_demo, serve_demo

__all__ = ["DemoError", "DemoInfo", "build_demo", "default_demo_dir", "run_demo", "serve_demo"]


def __getattr__(name: str) -> Any:
    # Lazy: `cd4ml-console --help` must not pay for the demo's imports.
    if name in ("DemoError", "DemoInfo", "build_demo"):
        from console.demo import build

        return getattr(build, name)
    if name in ("default_demo_dir", "run_demo", "serve_demo"):
        from console.demo import run

        return getattr(run, name)
    raise AttributeError(f"module 'console.demo' has no attribute {name!r}")
