"""Open the TUI straight on one model: ``python -m bench.open_model WORKSPACE MODEL``.

The CLI has no ``--model`` option yet; this goes through the same ``console.cli.open_tui`` the
CLI uses (config load, logging, ``run_tui(model=...)``), so the figure is the CLI's.
"""

from __future__ import annotations

import sys
from pathlib import Path

from console.cli import State, open_tui

if __name__ == "__main__":
    workspace, model = sys.argv[1], sys.argv[2]
    sys.exit(open_tui(State(Path(workspace), None, None, False, False), model=model))
