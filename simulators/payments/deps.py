"""Route dependencies of the payment-provider SIMULATOR: where a route gets the simulator it answers for.

Why: the simulator lives on the app object made by ``create_simulator()`` (never at import time), and one typed
alias is how every route reaches it. See notes/fault_tolerance.md, "The payment-provider simulator".
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from simulators.payments.simulation import PaymentSimulator


def current_simulator(request: Request) -> PaymentSimulator:
    simulator: PaymentSimulator = request.app.state.simulator
    return simulator


SimulatorDep = Annotated[PaymentSimulator, Depends(current_simulator)]
