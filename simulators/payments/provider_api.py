"""The payment-provider SIMULATOR's provider API: what refstack's payment client calls, as a real provider would.

Why so small: the contract is create a charge (idempotent by key), read a charge by id or find it by the
idempotency key it was made under (how a client settles a request whose answer it never got), and a health check
that no programmed fault ever touches. Faults and idempotency live in ``simulation``. See notes/fault_tolerance.md,
"The payment-provider simulator".
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import JSONResponse, Response

from simulators.payments.deps import SimulatorDep
from simulators.payments.replies import Reply, problem
from simulators.payments.schemas import ChargeRequest

router = APIRouter()


@router.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@router.post("/v1/charges", status_code=201)
async def create_charge(
    request: ChargeRequest,
    simulator: SimulatorDep,
    idempotency_key: Annotated[str | None, Header(max_length=255)] = None,
) -> Response:
    return await simulator.charge(idempotency_key, request)


@router.get("/v1/charges")
async def find_charge(
    simulator: SimulatorDep, idempotency_key: Annotated[str, Query(min_length=1, max_length=255)]
) -> JSONResponse:
    """What the books say now: a charge still being made (hanging) is not recorded yet, so it is a 404."""
    simulator.run.counters.lookups += 1
    charge = simulator.run.ledger.charge_for_key(idempotency_key)
    if charge is None:
        return problem(404, "No such charge", "No charge was made with this idempotency key.").to_response()
    return Reply(200, charge.public_view()).to_response()


@router.get("/v1/charges/{charge_id}")
async def read_charge(charge_id: str, simulator: SimulatorDep) -> JSONResponse:
    charge = simulator.run.ledger.charge(charge_id)
    if charge is None:
        return problem(404, "No such charge", f"No charge has id {charge_id!r}.").to_response()
    return Reply(200, charge.public_view()).to_response()
