"""What a database error means, read in one place: its SQLSTATE, wherever in the exception chain it sits.

Why a chain walk and not ``error.orig.sqlstate``: the server's code is on asyncpg's exception, which SQLAlchemy
wraps (``orig``) and which our own code may re-raise (``__cause__``); one level deep misses the second case and
silently turns a 40001 or a 55P03 into "unknown". Every reader of SQLSTATEs (the HTTP edge's problem mapping, the
SERIALIZABLE retry) uses this one. See notes/postgres.md, "Isolation levels, proved".
"""

from __future__ import annotations

SERIALIZATION_FAILURE = "40001"  # SSI aborted a transaction that would not be serializable
DEADLOCK_DETECTED = "40P01"  # the deadlock detector aborted one transaction of a cycle
LOCK_NOT_AVAILABLE = "55P03"  # lock_timeout fired (or NOWAIT found the row locked)
QUERY_CANCELED = "57014"  # statement_timeout fired (or someone cancelled the statement)
# Conflicts with another transaction: the aborted work is correct once run again from its first read.
RETRYABLE_CONFLICTS = frozenset({SERIALIZATION_FAILURE, DEADLOCK_DETECTED})


def sqlstate_of(error: BaseException) -> str | None:
    """The SQLSTATE of an asyncpg error, also when SQLAlchemy wrapped it (``orig``) or it was re-raised (``cause``)."""
    pending: list[BaseException] = [error]
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        code = getattr(current, "sqlstate", None)
        if isinstance(code, str):
            return code
        pending += [e for e in (getattr(current, "orig", None), current.__cause__) if isinstance(e, BaseException)]
    return None


def is_retryable_conflict(error: BaseException) -> bool:
    """A serialization failure or a deadlock, however deeply wrapped: run the whole transaction again."""
    return sqlstate_of(error) in RETRYABLE_CONFLICTS
