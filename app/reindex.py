"""``python -m app.reindex``: rebuild the Elasticsearch events index from PostgreSQL with no downtime.

Why a process of its own (like app/seed.py) and not an endpoint: a reindex reads every event and runs for as long
as that takes; it is an operator's step (``python -m stack reindex`` on a running stack), not a request. It reads
the events through a server-side cursor, fills ``events_v<N+1>``, moves the alias, replays every event changed since
a minute before it began (a transaction that started before the fill and committed during it is older than the
fill's snapshot and missed by it; statement timeouts keep every transaction far shorter than that minute), and drops
the old generation (app/search/reindex.py). Without ``REFSTACK_ELASTICSEARCH_URL`` there is nothing to rebuild:
PostgreSQL keeps its own search columns. See notes/elasticsearch.md, "Zero-downtime reindex".
"""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime, timedelta

from sqlalchemy import func, select

from app.db.engines import build_engine
from app.search.documents import changed_since, scheduled_documents
from app.search.es_search import open_elasticsearch
from app.search.reindex import reindex
from app.settings import Settings

REPLAY_MARGIN = timedelta(minutes=1)


async def rebuild(settings: Settings) -> int:
    """Reindex and print what happened; the exit status (1 when there is no Elasticsearch to rebuild)."""
    client = open_elasticsearch(settings)
    if client is None:
        print("REFSTACK_ELASTICSEARCH_URL is not set: no Elasticsearch index to rebuild (PostgreSQL keeps its own)")
        return 1
    engine = build_engine(settings.database_url, settings)
    try:
        async with engine.connect() as conn:
            now: datetime = (await conn.execute(select(func.now()))).scalar_one()
        done = await reindex(
            client, scheduled_documents(engine), lambda since: changed_since(engine, since), now - REPLAY_MARGIN
        )
    finally:
        await client.close()
        await engine.dispose()
    print(
        f"reindexed {done.loaded} events into {done.new_index} (alias moved from {done.old_index or 'nothing'}),"
        f" replayed {done.replayed} changed since {now - REPLAY_MARGIN:%H:%M:%S}"
    )
    return 0


def main() -> None:
    sys.exit(asyncio.run(rebuild(Settings())))


if __name__ == "__main__":
    main()
