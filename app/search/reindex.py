"""Zero-downtime reindex: build ``events_v<N+1>`` beside the live index, move the alias in one call, drop the old.

Why through an alias: a mapping change (a new analyzer, a new field type) cannot be applied to an existing index;
the data must be indexed again. Readers and the indexer name only the alias ``events``; the new index fills while
the old one keeps answering; ``_aliases`` with a ``remove`` and an ``add`` action is atomic, so no search ever sees
no index or both; then the old index is deleted. Writes that went to the old index during the fill are replayed
after the switch from PostgreSQL (every event changed since the fill began), and external versions make that replay
harmless. The first run (no alias yet) simply creates ``events_v1`` and the alias. See notes/elasticsearch.md,
"Zero-downtime reindex".
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from elasticsearch import AsyncElasticsearch, NotFoundError

from app.search.es_index import ALIAS, TEMPLATE, TEMPLATE_BODY, EventDocument, generation_of, index_name
from app.search.es_search import ElasticsearchEvents

ChangesSince = Callable[[datetime], AsyncIterable[tuple[EventDocument, str]]]


@dataclass(frozen=True)
class Reindexed:
    old_index: str | None
    new_index: str
    loaded: int
    replayed: int


async def install_template(client: AsyncElasticsearch) -> None:
    await client.indices.put_index_template(name=TEMPLATE, **TEMPLATE_BODY)


async def live_index(client: AsyncElasticsearch) -> str | None:
    """The index behind the alias, or None before the first reindex."""
    try:
        answer: Any = await client.indices.get_alias(name=ALIAS)
    except NotFoundError:
        return None
    [index] = list(answer.body)
    return str(index)


async def reindex(
    client: AsyncElasticsearch,
    documents: AsyncIterable[EventDocument],
    changes_since: ChangesSince,
    began: datetime,
) -> Reindexed:
    """Fill a new generation from ``documents`` (read from ``began`` on), switch the alias, replay, drop the old."""
    await install_template(client)
    old = await live_index(client)
    new = index_name(generation_of(old) + 1 if old else 1)
    await client.indices.create(index=new)
    loaded = await ElasticsearchEvents(client, new).bulk_put(documents)
    await client.indices.refresh(index=new)
    actions: list[dict[str, Any]] = [{"add": {"index": new, "alias": ALIAS}}]
    if old is not None:
        actions.insert(0, {"remove": {"index": old, "alias": ALIAS}})
    await client.indices.update_aliases(actions=actions)
    replayed = 0
    target = ElasticsearchEvents(client, new)
    async for document, status in changes_since(began):
        if status == "scheduled":
            await target.put(document)
        else:
            await target.remove(document.event_id, document.version)
        replayed += 1
    if old is not None:
        await client.indices.delete(index=old)
    return Reindexed(old_index=old, new_index=new, loaded=loaded, replayed=replayed)
