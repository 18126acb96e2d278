"""The payment-provider SIMULATOR's composition root: ``create_simulator()`` builds the app and its state.

Why a factory: nothing is built at import time, so every test (and every process) gets a fresh simulator with
empty books. See notes/fault_tolerance.md, "The payment-provider simulator".
"""

from __future__ import annotations

from fastapi import FastAPI

from simulators.payments import control_api, provider_api
from simulators.payments.simulation import PaymentSimulator


def create_simulator() -> FastAPI:
    """A fresh payment-provider simulator: provider API, ``/_sim/`` control API, in-memory state."""
    app = FastAPI(
        title="refstack payment-provider simulator",
        description="A SIMULATOR of an external payment provider, with failures programmable at run time.",
    )
    app.state.simulator = PaymentSimulator()
    app.include_router(provider_api.router)
    app.include_router(control_api.router)
    return app
