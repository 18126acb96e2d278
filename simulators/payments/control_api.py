"""The payment-provider SIMULATOR's control API under ``/_sim/``: how tests program failures at run time.

Why over HTTP: the simulator runs as its own process, like a real provider, so a fault test (or a person with
curl) reprograms it from outside and reads back exact counters and the charges it recorded.
See notes/fault_tolerance.md, "The payment-provider simulator".
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from simulators.payments.behaviour import Behaviour
from simulators.payments.deps import SimulatorDep

router = APIRouter(prefix="/_sim")


@router.put("/behaviour")
async def program_behaviour(behaviour: Behaviour, simulator: SimulatorDep) -> Behaviour:
    simulator.program(behaviour)
    return simulator.run.dice.programmed()


@router.get("/behaviour")
async def read_behaviour(simulator: SimulatorDep) -> Behaviour:
    return simulator.run.dice.programmed()


@router.post("/reset", status_code=204)
async def reset(simulator: SimulatorDep) -> Response:
    simulator.reset()
    return Response(status_code=204)


@router.get("/stats")
async def read_stats(simulator: SimulatorDep) -> dict[str, int]:
    return simulator.run.stats()


@router.get("/charges")
async def list_charges(simulator: SimulatorDep) -> dict[str, list[dict[str, Any]]]:
    return {"items": [charge.model_dump(mode="json") for charge in simulator.run.ledger.charges()]}
