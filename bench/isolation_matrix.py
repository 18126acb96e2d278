"""Print the isolation matrix of PostgreSQL as measured now: the ten Hermitage anomalies at three levels.

Why a printer beside the tests: the tests assert the expected outcome per case; this prints what the server
actually did, so the table in the note is generated, not typed. It runs the same scripts
(tests/isolation/hermitage.py) against a private primary it starts (only PostgreSQL, on free ports) or against
``--dsn``. See notes/postgres.md ("Isolation levels, proved").

Run: ``make isolation-matrix`` or ``.venv/bin/python -m bench.isolation_matrix [--dsn postgresql://...] [--how]``.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

from stack.native.layout import Layout
from stack.native.stack import NativeStack
from tests.isolation.hermitage import matrix_lines, run_matrix


def measure(dsn: str, how: bool) -> None:
    matrix = asyncio.run(run_matrix(dsn))
    print("\n".join(matrix_lines(matrix)))
    if how:
        print("\n# how: blocked = waited on a row lock; 40001 = aborted; snapshot = neither, MVCC hid the change")
        print("\n".join(matrix_lines(matrix, lambda outcome: outcome.how)[1:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dsn", help="an asyncpg DSN (postgresql://...); default: start a private primary")
    parser.add_argument("--how", action="store_true", help="also print how each cell was prevented or let through")
    args = parser.parse_args()
    if args.dsn:
        measure(args.dsn, args.how)
        return
    native = NativeStack(Layout.create(fixed=False))
    native.save_state()  # a killed run leaves a state file that the reaper can clean up
    try:
        native.primary.start()
        native.save_state()
        print(f"# PostgreSQL {native.primary.sql('show server_version')}, private primary", file=sys.stderr)
        measure(native.primary.direct_url, args.how)
    finally:
        native.down()


if __name__ == "__main__":
    main()
