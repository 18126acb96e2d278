"""The payment-provider SIMULATOR keeps its promises: idempotent charges and faults exactly as programmed.

Why: fault tests of refstack's payment client trust the simulator's counters ("one charge, never two"), so the
simulator itself is proved first, in-process through httpx's ASGI transport, plus once as a real process.
See notes/fault_tolerance.md, "The payment-provider simulator".
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from simulators.payments import create_simulator
from tests.polling import wait_for_async

REPO_ROOT = Path(__file__).resolve().parents[2]
CHARGE: dict[str, Any] = {"amount_cents": 4200, "currency": "EUR", "card_token": "tok_visa", "description": "2 seats"}


@pytest.fixture
async def sim() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_simulator())
    async with httpx.AsyncClient(transport=transport, base_url="http://simulator") as client:
        yield client


async def charge(client: httpx.AsyncClient, key: str | None, body: dict[str, Any] | None = None) -> httpx.Response:
    headers = {} if key is None else {"Idempotency-Key": key}
    return await client.post("/v1/charges", json=CHARGE if body is None else body, headers=headers)


async def program(client: httpx.AsyncClient, **behaviour: Any) -> dict[str, Any]:
    response = await client.put("/_sim/behaviour", json=behaviour)
    assert response.status_code == 200, response.text
    programmed: dict[str, Any] = response.json()
    return programmed


async def stats(client: httpx.AsyncClient) -> dict[str, int]:
    response = await client.get("/_sim/stats")
    counters: dict[str, int] = response.json()
    return counters


async def recorded_charges(client: httpx.AsyncClient) -> list[dict[str, Any]]:
    response = await client.get("/_sim/charges")
    items: list[dict[str, Any]] = response.json()["items"]
    return items


async def test_health_answers_ok_even_when_every_charge_fails(sim: httpx.AsyncClient) -> None:
    await program(sim, error_rate=1.0, latency_ms=5_000)

    response = await sim.get("/health")

    assert (response.status_code, response.json()) == (200, {"status": "ok"})


async def test_a_charge_succeeds_and_can_be_read_back(sim: httpx.AsyncClient) -> None:
    created = await charge(sim, "key-ok")

    assert created.status_code == 201
    body = created.json()
    assert body["id"].startswith("ch_")
    assert (body["status"], body["amount_cents"], body["currency"]) == ("succeeded", 4200, "EUR")
    assert "created_at" in body
    assert "Idempotent-Replayed" not in created.headers
    read = await sim.get(f"/v1/charges/{body['id']}")
    assert (read.status_code, read.json()) == (200, body)
    assert await stats(sim) == {
        "charges_created": 1,
        "requests_total": 1,
        "errors_injected": 0,
        "timeouts_injected": 0,
        "replays": 0,
        "lookups": 0,
    }


async def test_reading_an_unknown_charge_is_a_404_problem(sim: httpx.AsyncClient) -> None:
    response = await sim.get("/v1/charges/ch_missing")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["status"] == 404


async def test_a_charge_is_found_by_its_idempotency_key_and_an_unknown_key_is_a_404_problem(
    sim: httpx.AsyncClient,
) -> None:
    await program(sim, declined_cards=["tok_stolen"])
    made = (await charge(sim, "key-found")).json()
    declined = (await charge(sim, "key-declined-found", {**CHARGE, "card_token": "tok_stolen"})).json()

    found = await sim.get("/v1/charges", params={"idempotency_key": "key-found"})
    found_declined = await sim.get("/v1/charges", params={"idempotency_key": "key-declined-found"})
    missing = await sim.get("/v1/charges", params={"idempotency_key": "key-never-used"})

    assert (found.status_code, found.json()) == (200, made)
    assert (found_declined.status_code, found_declined.json()) == (200, declined)
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    assert missing.json()["status"] == 404
    assert (await sim.get("/v1/charges")).status_code == 422
    assert (await stats(sim))["lookups"] == 3


async def test_a_charge_still_hanging_is_not_found_until_it_is_recorded(sim: httpx.AsyncClient) -> None:
    """What makes a lookup racy: the provider finishes a request its client gave up on after the lookup."""
    await program(sim, timeout_rate=1.0, hang_s=0.3)
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(charge(sim, "key-late"), timeout=0.05)
    assert (await sim.get("/v1/charges", params={"idempotency_key": "key-late"})).status_code == 404

    async def found() -> bool:
        return (await sim.get("/v1/charges", params={"idempotency_key": "key-late"})).status_code == 200

    await wait_for_async(found, timeout_s=5, what="the abandoned charge to be found by its key")


async def test_a_declined_card_is_a_402_that_replays_as_a_402(sim: httpx.AsyncClient) -> None:
    await program(sim, declined_cards=["tok_stolen"])
    declined_body = {**CHARGE, "card_token": "tok_stolen"}

    first = await charge(sim, "key-declined", declined_body)
    again = await charge(sim, "key-declined", declined_body)

    assert first.status_code == 402
    assert first.json()["status"] == "declined"
    assert first.json()["decline_code"] == "card_declined"
    assert (again.status_code, again.json()) == (402, first.json())
    assert again.headers["Idempotent-Replayed"] == "true"


async def test_a_charge_without_an_idempotency_key_is_a_400_and_charges_nothing(sim: httpx.AsyncClient) -> None:
    response = await charge(sim, None)

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert await recorded_charges(sim) == []


async def test_the_same_key_and_body_replays_the_first_answer_without_charging_again(
    sim: httpx.AsyncClient,
) -> None:
    first = await charge(sim, "key-replay")
    again = await charge(sim, "key-replay")

    assert (again.status_code, again.json()) == (201, first.json())
    assert again.headers["Idempotent-Replayed"] == "true"
    assert len(await recorded_charges(sim)) == 1
    assert (await stats(sim))["replays"] == 1


async def test_the_same_key_with_a_different_body_is_a_409(sim: httpx.AsyncClient) -> None:
    await charge(sim, "key-conflict")

    response = await charge(sim, "key-conflict", {**CHARGE, "amount_cents": 1})

    assert response.status_code == 409
    assert len(await recorded_charges(sim)) == 1


async def test_concurrent_requests_with_one_key_charge_once(sim: httpx.AsyncClient) -> None:
    responses = await asyncio.gather(*(charge(sim, "key-race") for _ in range(20)))

    assert {r.status_code for r in responses} == {201}
    assert len({r.json()["id"] for r in responses}) == 1
    assert sum(r.headers.get("Idempotent-Replayed") == "true" for r in responses) == 19
    assert len(await recorded_charges(sim)) == 1


async def test_concurrent_requests_with_one_key_charge_once_even_while_the_provider_hangs(
    sim: httpx.AsyncClient,
) -> None:
    # Every request hangs between looking the key up and recording: without the per-key lock this makes 20 charges.
    await program(sim, timeout_rate=1.0, hang_s=0.01)

    responses = await asyncio.gather(*(charge(sim, "key-hung-race") for _ in range(20)))

    assert {r.status_code for r in responses} == {201}
    assert len(await recorded_charges(sim)) == 1
    assert (await stats(sim))["timeouts_injected"] == 20


async def test_fail_next_fails_exactly_that_many_requests_with_503_then_charges(sim: httpx.AsyncClient) -> None:
    await program(sim, fail_next=2)

    statuses = [(await charge(sim, f"key-fail-{n}")).status_code for n in range(3)]

    assert statuses == [503, 503, 201]
    assert (await sim.get("/_sim/behaviour")).json()["fail_next"] == 0
    assert (await stats(sim))["errors_injected"] == 2
    assert len(await recorded_charges(sim)) == 1


async def test_an_injected_error_charges_nothing_so_a_retry_with_the_same_key_charges_once(
    sim: httpx.AsyncClient,
) -> None:
    await program(sim, fail_next=1)

    failed = await charge(sim, "key-retry")
    retried = await charge(sim, "key-retry")

    assert failed.status_code == 503
    assert failed.headers["content-type"] == "application/problem+json"
    assert retried.status_code == 201
    assert "Idempotent-Replayed" not in retried.headers
    assert len(await recorded_charges(sim)) == 1


async def test_error_rate_with_a_seed_fails_the_same_requests_every_time(sim: httpx.AsyncClient) -> None:
    async def run_once() -> list[int]:
        await sim.post("/_sim/reset")
        await program(sim, error_rate=0.5, seed=7)
        return [(await charge(sim, f"key-seeded-{n}")).status_code for n in range(40)]

    first, second = await run_once(), await run_once()

    assert first == second
    assert set(first) == {201, 500, 503}
    assert (await stats(sim))["errors_injected"] == sum(status != 201 for status in first)
    assert len(await recorded_charges(sim)) == first.count(201)


async def test_latency_delays_every_charge_answer(sim: httpx.AsyncClient) -> None:
    await program(sim, latency_ms=200)

    started = time.monotonic()
    response = await charge(sim, "key-slow")
    elapsed = time.monotonic() - started

    assert response.status_code == 201
    assert 0.2 <= elapsed < 5.0


async def test_a_timed_out_charge_still_happens_and_the_retry_gets_it(sim: httpx.AsyncClient) -> None:
    await program(sim, timeout_rate=1.0, hang_s=0.3)

    with pytest.raises(TimeoutError):
        await asyncio.wait_for(charge(sim, "key-timeout"), timeout=0.05)
    assert await recorded_charges(sim) == []

    async def charged() -> bool:
        return len(await recorded_charges(sim)) == 1

    await wait_for_async(charged, timeout_s=5, what="the abandoned charge to be recorded")
    charges = await recorded_charges(sim)
    await program(sim)
    retried = await charge(sim, "key-timeout")

    assert (retried.status_code, retried.json()["id"]) == (201, charges[0]["id"])
    assert retried.headers["Idempotent-Replayed"] == "true"
    assert (await stats(sim))["timeouts_injected"] == 1


async def test_reset_clears_behaviour_charges_and_counters(sim: httpx.AsyncClient) -> None:
    defaults = (await sim.get("/_sim/behaviour")).json()
    await program(sim, declined_cards=["tok_visa"], latency_ms=1, fail_next=3, seed=1)
    await charge(sim, "key-before-reset")

    response = await sim.post("/_sim/reset")

    assert response.status_code == 204
    assert (await sim.get("/_sim/behaviour")).json() == defaults
    assert await recorded_charges(sim) == []
    assert set((await stats(sim)).values()) == {0}
    assert (await charge(sim, "key-before-reset")).status_code == 201


async def test_reset_wakes_a_hanging_charge_which_then_records_nothing(sim: httpx.AsyncClient) -> None:
    await program(sim, timeout_rate=1.0, hang_s=60.0)
    hanging = asyncio.create_task(charge(sim, "key-hanging"))

    async def hangs() -> bool:
        return (await stats(sim))["timeouts_injected"] == 1

    await wait_for_async(hangs, timeout_s=5, what="the charge to hang")

    await sim.post("/_sim/reset")

    assert (await asyncio.wait_for(hanging, timeout=5.0)).status_code == 503
    assert await recorded_charges(sim) == []


@pytest.mark.parametrize(
    "body",
    [
        {**CHARGE, "amount_cents": 0},
        {**CHARGE, "amount_cents": "4200"},
        {**CHARGE, "currency": "EURO"},
        {**CHARGE, "card_token": ""},
        {key: value for key, value in CHARGE.items() if key != "card_token"},
        {**CHARGE, "surprise": True},
    ],
    ids=["zero-amount", "amount-as-text", "four-letter-currency", "empty-card", "no-card", "unknown-field"],
)
async def test_an_invalid_charge_is_a_422(sim: httpx.AsyncClient, body: dict[str, Any]) -> None:
    response = await charge(sim, "key-invalid", body)

    assert response.status_code == 422
    assert await recorded_charges(sim) == []


@pytest.mark.parametrize(
    "behaviour",
    [{"error_rate": 1.5}, {"error_rate": 0.6, "timeout_rate": 0.6}, {"latency_ms": -1}, {"hang_s": 0}, {"oops": 1}],
    ids=["rate-above-one", "rates-sum-above-one", "negative-latency", "zero-hang", "unknown-field"],
)
async def test_an_invalid_behaviour_is_a_422_and_changes_nothing(
    sim: httpx.AsyncClient, behaviour: dict[str, Any]
) -> None:
    before = (await sim.get("/_sim/behaviour")).json()

    response = await sim.put("/_sim/behaviour", json=behaviour)

    assert response.status_code == 422
    assert (await sim.get("/_sim/behaviour")).json() == before


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


async def test_runs_as_its_own_process_and_stops_on_sigterm(tmp_path: Path) -> None:
    port = free_port()
    log_path = tmp_path / "payments-simulator.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "simulators.payments", "--port", str(port)],
            cwd=REPO_ROOT,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=1.0) as client:

            async def healthy() -> bool:
                assert process.poll() is None, f"simulator exited; log:\n{log_path.read_text()}"
                try:
                    return (await client.get("/health")).status_code == 200
                except httpx.TransportError:
                    return False

            await wait_for_async(healthy, timeout_s=15.0, what=f"the simulator on port {port} to answer /health")
            assert (await charge(client, "key-real-process")).status_code == 201
    finally:
        process.terminate()
        returncode = process.wait(timeout=10)
    # uvicorn shuts down gracefully, then re-raises the signal it caught so the parent sees how it ended.
    assert returncode == -signal.SIGTERM, log_path.read_text()
