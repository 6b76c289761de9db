"""The ``cd4ml-console`` command line (docs/cli.md).

``group`` is the top command and the workspace commands (status, versions, doctor, demo, ...);
``runtime`` what every subcommand shares (options, exit codes, running a coroutine); ``release``,
``live`` and ``login`` the subcommands of their area; ``views`` the release commands' text and
JSON; ``paths`` the path option callback. Nothing is imported here: ``--help`` stays fast.
"""

from __future__ import annotations


def main() -> None:
    """The entry point (``cd4ml-console`` and ``python -m console``)."""
    from console.cli.group import main as run

    run()
