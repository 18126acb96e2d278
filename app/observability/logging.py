"""structlog set up once per process: one JSON object per line, carrying whatever the request bound.

Why structlog with contextvars: the request id is bound once by the request-id middleware and then appears on every
line logged while that request runs, in any module, without passing it around. ``create_app`` calls
``configure_logging``; nothing is configured at import time. See notes/fastapi.md, "Observability".
"""

from __future__ import annotations

import logging

import structlog
from structlog.typing import Processor


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
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            *renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelNamesMapping()[level.upper()]),
        logger_factory=structlog.PrintLoggerFactory(),
        cache_logger_on_first_use=False,
    )
