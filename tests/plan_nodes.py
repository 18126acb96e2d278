"""Walking an ``EXPLAIN (FORMAT JSON)`` plan: every node, depth first. Shared by the plan tests
(tests/integration/test_query_plans.py, tests/integration/test_pg_housekeeping.py), so no test imports another
test module. See notes/postgres.md, "Plans, indexes and timeouts".
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any


def nodes(plan: dict[str, Any]) -> Iterator[dict[str, Any]]:
    yield plan
    for child in plan.get("Plans", ()):
        yield from nodes(child)
