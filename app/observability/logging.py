"""structlog set up once per process: one JSON object per line, carrying whatever the request bound.

Why structlog with contextvars: the request id is bound once by the request-id middleware and then appears on every
line logged while that request runs, in any module, without passing it around. ``create_app`` calls
``configure_logging``; nothing is configured at import time. See notes/fastapi.md, "Observability".
"""

from __future__ import annotations

import logging
import time

import structlog
from structlog.typing import EventDict, Processor, WrappedLogger


def configure_logging(level: str, *, json: bool) -> None:
    """Route structlog to stdout: JSON for machines (``json=True``), coloured key=value for a person."""
    # Tracebacks without frame locals: locals hold passwords, tokens and request bodies, which never go to logs.
    tracebacks = structlog.processors.ExceptionRenderer(
        structlog.tracebacks.ExceptionDictTransformer(show_locals=False)
    )
    renderer: list[Processor] = (
        [tracebacks, structlog.processors.JSONRenderer()] if json else [structlog.dev.ConsoleRenderer()]
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            UtcTimestamp(),
            *renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.WriteLoggerFactory(),
        cache_logger_on_first_use=False,
    )


class UtcTimestamp:
    """The line's ``timestamp`` as ISO 8601 UTC with microseconds (``2026-11-30T19:03:27.730708Z``), the format
    structlog's ``TimeStamper(fmt="iso", utc=True)`` writes, with the date and second formatted once a second: the
    access log writes a line per request, and ``datetime.isoformat`` on each was a quarter of the line's cost
    (notes/fastapi.md, "What a request costs")."""

    def __init__(self) -> None:
        self._second: tuple[int, str] = (-1, "")  # one attribute, replaced whole: never a prefix of another second

    def __call__(self, logger: WrappedLogger, method_name: str, event_dict: EventDict) -> EventDict:
        now = time.time()
        second, prefix = self._second
        if int(now) != second:
            second = int(now)
            prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = (second, prefix)
        event_dict["timestamp"] = f"{prefix}.{int((now - second) * 1_000_000):06d}Z"
        return event_dict
