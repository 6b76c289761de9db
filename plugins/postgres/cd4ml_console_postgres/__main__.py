"""``python -m cd4ml_console_postgres sql [--schema S] [--group G]``: print the SQL an admin
runs once as the store's owner (the tables at the current version, the triggers, the grants of
the people's group role), e.g. ``... sql | psql -v ON_ERROR_STOP=1 -d mlops``."""

from __future__ import annotations

import argparse
import sys

from cd4ml_console_postgres import _IDENTIFIER
from cd4ml_console_postgres.schema import script


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cd4ml_console_postgres")
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("sql", help="print the SQL creating the store and its grants")
    cmd.add_argument("--schema", default="cd4ml_audit", help="schema (default: cd4ml_audit)")
    cmd.add_argument(
        "--group", default="cd4ml_people", help="role every person's role is a member of"
    )
    args = parser.parse_args(argv)
    for value, what in ((args.schema, "--schema"), (args.group, "--group")):
        if not _IDENTIFIER.fullmatch(value):
            parser.error(f"{what} {value!r}: use lower-case letters, digits and _")
    sys.stdout.write(script(args.schema, args.group))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
