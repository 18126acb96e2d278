"""Demo data for ``make up``: an organizer, a user and a few events with seats, created once, idempotently.

Why a separate process run after migrations (``python -m app.seed``) and never inside the app: every worker would
race to seed, and seeding is a deploy step, not a request. Passwords come from ``REFSTACK_DEMO_PASSWORD``
(default ``refstack-demo``); ``python -m stack up`` prints them. See notes/rest_design.md.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert

from app.db.engines import build_engine
from app.db.models import Event, User
from app.security.passwords import PasswordHasher
from app.services.events import NewEvent, create_event
from app.services.unit_of_work import TransactionTimeouts, UnitOfWorkFactory
from app.settings import Settings

ORGANIZER, USER = "organizer@example.com", "user@example.com"
EVENTS = (
    ("Flash Sale Live", "Berlin", "Velodrom", 4900, 10, 20),
    ("Jazz by the River", "Berlin", "Spreeufer Stage", 2900, 5, 10),
    ("Fado Night", "Lisbon", "Coliseu", 3500, 8, 15),
    ("Tech Keynote", "Lisbon", "Altice Arena", 0, 10, 25),
    ("Chopin Recital", "Warsaw", "Filharmonia", 6000, 6, 12),
    # Worth searching (notes/elasticsearch.md): accents to fold, performers to misspell, cities to type half of
    ("Brahms and Dvořák with the Tonhalle Orchestra", "Zürich", "Tonhalle", 7500, 8, 20),
    ("Kraków Jazz Night: Tomasz Stańko Tribute", "Kraków", "Piec Art", 3000, 4, 10),
    ("Mariza Sings Fado", "Lisbon", "Coliseu", 4500, 8, 15),
    ("Mahler Symphony No. 5", "Berlin", "Philharmonie", 8000, 10, 20),
    ("Rosalía Live", "Málaga", "Starlite", 6500, 10, 25),
    ("Beethoven Piano Sonatas by Igor Levit", "München", "Isarphilharmonie", 5500, 6, 14),
)


async def seed(settings: Settings) -> int:
    """Create the demo accounts and events unless they exist; returns how many events it created."""
    engine = build_engine(settings.database_url, settings)
    hasher = PasswordHasher()
    uows = UnitOfWorkFactory(engine, TransactionTimeouts.of(settings))
    try:
        async with uows() as uow:
            for email, role in ((ORGANIZER, "organizer"), (USER, "user")):
                await uow.session.execute(
                    insert(User)
                    .values(email=email, password_hash=hasher.hash(settings.demo_password), role=role)
                    .on_conflict_do_nothing(index_elements=[User.email])
                )
            organizer_id = await uow.session.scalar(select(User.id).where(User.email == ORGANIZER))
            existing = await uow.session.scalar(select(func.count()).where(Event.organizer_id == organizer_id))
            await uow.commit()
        if organizer_id is None or existing:
            return 0
        start = datetime.now(UTC).replace(minute=0, second=0, microsecond=0) + timedelta(days=7)
        for day, (title, city, venue, price, rows, per_row) in enumerate(EVENTS):
            event = NewEvent(title, city, venue, start + timedelta(days=day), price, rows, per_row)
            await create_event(uows, organizer_id, event)
        return len(EVENTS)
    finally:
        await engine.dispose()


def main() -> None:
    created = asyncio.run(seed(Settings()))
    print(f"demo data: {created} events created" if created else "demo data: already present")


if __name__ == "__main__":
    main()
