"""Regenerate the SVG screenshots in docs/img from the real demo (seeded, live model server).

    .venv/bin/python docs/screenshots.py

Builds the demo in a temporary folder, starts its model server with traffic, opens the
console headless at 120x40 and 80x24, and saves what it shows.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from console.config import read_config_file
from console.demo.build import build_demo
from console.demo.run import set_metrics_port
from console.demo.server import ModelServer
from console.tui.app import ConsoleApp

OUT = Path(__file__).parent / "img"


async def settle(pilot: object, seconds: float) -> None:
    await asyncio.sleep(seconds)
    await pilot.pause()  # type: ignore[attr-defined]


async def shoot(workspace: Path) -> list[Path]:
    config = read_config_file(workspace / "cd4ml-console.toml")
    saved: list[Path] = []
    for size, suffix in (((120, 40), ""), ((80, 24), "-80x24")):
        app = ConsoleApp(config, refresh_seconds=2)
        async with app.run_test(size=size) as pilot:
            await settle(pilot, 6)
            saved.append(Path(app.save_screenshot(f"overview{suffix}.svg", str(OUT))))
            await pilot.press("enter")
            await settle(pilot, 4)
            saved.append(Path(app.save_screenshot(f"model{suffix}.svg", str(OUT))))
            if not suffix:
                await pilot.press("3")  # the live panel
                await settle(pilot, 5)
                saved.append(Path(app.save_screenshot("live.svg", str(OUT))))
                await pilot.press("question_mark")
                await settle(pilot, 1)
                saved.append(Path(app.save_screenshot("help.svg", str(OUT))))
    return saved


def main() -> int:
    OUT.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp) / "demo"
        build_demo(ws, seed=7)
        with ModelServer(ws, port=0, rps=8.0) as server:
            assert server.wait_ready(10)
            set_metrics_port(ws / "cd4ml-console.toml", server.port)
            time.sleep(4)  # some traffic before the first scrape
            for path in asyncio.run(shoot(ws)):
                print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
