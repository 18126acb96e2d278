"""A client generated from the live contract books a seat: what a team consuming the API would do first.

openapi-python-client (a third-party generator, a locked dev dependency, so it runs offline) reads
``/openapi.json`` from the session stack through Nginx and writes a typed package into a temporary folder; the test
imports it and walks the whole purchase with nothing but that package: register, log in (the OAuth2 password
form), find the event in the list, read its seats, hold two, book them with an ``Idempotency-Key``, read the
booking. It fails if the document cannot be generated from, if an operation's ``operationId`` does not give the
call its chosen name, or if any answer does not parse as the schema says. See notes/rest_design.md, "The contract".
"""

from __future__ import annotations

import importlib
import secrets
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from stack.native.stack import NativeStack
from tests.api_users import create_event, new_user

PACKAGE = "refstack_client"
GENERATOR_CONFIG = f'{{"post_hooks": [], "package_name_override": "{PACKAGE}", "project_name_override": "refstack"}}'


def generate_client(schema_url: str, folder: Path) -> None:
    """Run the generator's own command line on the served document; ``--meta none`` writes just the package."""
    config = folder / "generator.json"
    config.write_text(GENERATOR_CONFIG)
    generator = Path(sys.executable).with_name("openapi-python-client")
    command = [str(generator), "generate", "--url", schema_url, "--meta", "none", "--config", str(config)]
    run = subprocess.run(
        [*command, "--output-path", str(folder / PACKAGE)], capture_output=True, text=True, timeout=60, check=False
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Warning" not in run.stdout + run.stderr, run.stdout + run.stderr  # nothing in the document was skipped


def imported(name: str) -> ModuleType:
    return importlib.import_module(f"{PACKAGE}.{name}")


@pytest.fixture
def client_package(stack: NativeStack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The package generated from what Nginx serves, importable for this test only."""
    generate_client(f"{stack.nginx.url}/openapi.json", tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield
    for module in [m for m in sys.modules if m == PACKAGE or m.startswith(f"{PACKAGE}.")]:
        del sys.modules[module]


@pytest.mark.usefixtures("client_package", "closed_breakers")
def test_a_generated_client_books_a_seat_end_to_end(stack: NativeStack) -> None:
    organizer = new_user(stack, organizer=True, label="generated-client-organizer")
    city = f"Generated-{secrets.token_hex(4)}"
    event_id = uuid.UUID(create_event(stack, organizer, city=city, price_cents=2500)["id"])
    client_module, models = imported("client"), imported("models")
    auth, events, holds, bookings = (imported(f"api.{tag}") for tag in ("auth", "events", "holds", "bookings"))

    email, password = f"generated-{secrets.token_hex(6)}@example.com", f"pw-{secrets.token_urlsafe(12)}"
    with client_module.Client(base_url=stack.nginx.url, raise_on_unexpected_status=True) as anonymous:
        account = models.Registration(email=email, password=password)
        assert isinstance(call(auth, "auth_register", client=anonymous, body=account), models.UserOut)
        form = models.BodyAuthToken(username=email, password=password, grant_type="password")
        tokens = call(auth, "auth_token", client=anonymous, body=form)
    assert isinstance(tokens, models.TokenOut), tokens

    with client_module.AuthenticatedClient(
        base_url=stack.nginx.url, token=tokens.access_token, raise_on_unexpected_status=True
    ) as buyer:
        page = call(events, "events_list", client=buyer, city=city)
        assert [summary.id for summary in page.items] == [event_id]
        assert page.items[0].seats_available == 6
        wanted = [seat.id for seat in call(events, "events_seats", event_id=event_id, client=buyer).items[:2]]
        hold = call(holds, "holds_place", event_id=event_id, client=buyer, body=models.HoldIn(seat_ids=wanted))
        assert isinstance(hold, models.HoldOut), hold
        assert sorted(hold.seat_ids) == sorted(wanted)

        key, order = f"generated-{secrets.token_hex(8)}", models.BookingIn(hold_id=hold.id)
        booking = call(bookings, "bookings_book", client=buyer, body=order, idempotency_key=key)
        assert isinstance(booking, models.BookingOut), booking
        assert (booking.status, booking.amount_cents, sorted(booking.seat_ids)) == ("confirmed", 5000, sorted(wanted))
        replay = call(bookings, "bookings_book", client=buyer, body=order, idempotency_key=key)
        assert replay.id == booking.id  # the same key answers with the first booking, never a second charge
        read = call(bookings, "bookings_read", booking_id=booking.id, client=buyer)
        assert (read.id, read.status, sorted(read.seat_ids)) == (booking.id, "confirmed", sorted(wanted))


def call(package: ModuleType, operation: str, **arguments: Any) -> Any:
    """``<package>.<operation>.sync_detailed(...)``: the generated call named by the operationId, its status kept."""
    module = importlib.import_module(f"{package.__name__}.{operation}")
    response = module.sync_detailed(**arguments)
    assert 200 <= response.status_code < 300, (operation, response.status_code, response.content)
    return response.parsed
