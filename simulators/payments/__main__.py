"""Command line of the payment-provider SIMULATOR: ``python -m simulators.payments --host H --port N``.

Why a plain foreground process: ``stack`` starts, pauses and stops it by PID like any other service, so it runs
one uvicorn worker, logs everything to stderr and exits on SIGTERM/Ctrl-C. The default port matches the default
``REFSTACK_PAYMENTS_URL``. See notes/fault_tolerance.md, "The payment-provider simulator".
"""

from __future__ import annotations

import argparse
import copy
from collections.abc import Sequence
from typing import Any

import uvicorn
from uvicorn.config import LOGGING_CONFIG

from simulators.payments.app import create_simulator

DEFAULT_PORT = 21090
# Requests hanging on purpose must not hold up a shutdown: the simulator has nothing worth draining.
GRACEFUL_SHUTDOWN_S = 1


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=".venv/bin/python -m simulators.payments",  # as pasted in the repository (and in the image's /app)
        description="Run the payment-provider SIMULATOR (not product code) in the foreground.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="TCP port (default: %(default)s)")
    parser.add_argument(
        "--log-level", default="info", choices=("debug", "info", "warning", "error"), help="(default: %(default)s)"
    )
    return parser.parse_args(argv)


def stderr_logging(level: str) -> dict[str, Any]:
    """uvicorn's logging config with access logs moved to stderr and the simulator's own logger added."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["handlers"]["access"]["stream"] = "ext://sys.stderr"
    config["loggers"]["simulators"] = {"handlers": ["default"], "level": level.upper(), "propagate": False}
    return config


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    uvicorn.run(
        create_simulator(),
        host=args.host,
        port=args.port,
        workers=1,
        log_level=args.log_level,
        log_config=stderr_logging(args.log_level),
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )


if __name__ == "__main__":
    main()
