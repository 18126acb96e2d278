"""Event search in PostgreSQL: the fallback when Elasticsearch is slow, down or absent, and a first-class one.

Why this statement: every word must match, and a word matches if it is a lexeme of ``event.search_vector`` (a
weighted ``tsvector`` the database keeps, migration 0009; GIN index, ``websearch_to_tsquery``) or if it is close to
a word of ``event.search_text`` by ``pg_trgm``'s word similarity (``<%``, at least
``pg_trgm.word_similarity_threshold``, 0.6 by default; trigram GIN index): "Zurik" and "Ber" pass, unrelated words
do not. The planner ORs the two bitmap index scans of each word and ANDs the words, so no row is read that the
indexes do not name. A phrase must match the vector as a run of words; exclusions remove rows whose vector matches
any excluded word or phrase. Text is folded by ``search_fold`` (unaccent, lower) on both sides, so "Zurich" finds
"Zürich".

Two passes: the exact one (every word and phrase as lexemes, one GIN lookup) and, only when it does not fill the
page, the full one with the trigram branch. An exact row always outranks a row with any near word: its
``ts_rank_cd`` is positive and each of its words has similarity 1 (the word is in the text), while a near-only row
has ``ts_rank_cd`` 0 (its tsquery fails) and at least one similarity below 1. So a full exact page is exactly the page
the full statement would return, including after a cursor, and the common search never pays for trigrams.

Rank is ``ts_rank_cd`` (cover density over the A/B/C weights: title 1.0, venue 0.4, city 0.2) plus each word's
trigram similarity, so an exact word outranks a misspelt one and a title outranks a city. Pages are keyset over
``(rank, id)`` descending: a row's rank is a pure function of the query and the row, and ``id`` breaks ties, so the
order is total and a cursor resumes exactly after its row (a row edited between two pages may move, as with any
keyset over a mutable key). ``rank`` is a ``real``; the cursor carries it as the double it converts to exactly, and
the comparison promotes the column the same way.

Why the query's words are written into the statement (``literal_execute``) rather than sent as parameters: the
driver prepares each statement once, and after five executions PostgreSQL may switch to a generic plan in which
``search_fold($1)`` is no longer a constant folded at planning but a call evaluated for every candidate row (unaccent,
then the tsquery parser, three times per row). Written in, each text is its own statement and always folded once.
The words are letters, digits, quotes and spaces only (app/domain/search_query.py), and SQLAlchemy escapes literals.
See notes/elasticsearch.md, "The PostgreSQL fallback".
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, Float, Select, Text, bindparam, func, literal_column, not_, or_, select, tuple_
from sqlalchemy.dialects.postgresql import TSVECTOR
from sqlalchemy.ext.asyncio import AsyncSession

from app.db.models import Event
from app.search.page import SearchHit, SearchRequest

SEARCH_VECTOR: ColumnElement[object] = literal_column("event.search_vector", TSVECTOR)
SEARCH_TEXT: ColumnElement[str] = literal_column("event.search_text", Text)
SIMPLE: ColumnElement[object] = literal_column("'simple'::regconfig")
SCHEDULED = "scheduled"


def _folded(text: str) -> ColumnElement[str]:
    """``search_fold(text)``, the text written into the statement at execution (see the module docstring)."""
    return func.search_fold(bindparam(None, text, type_=Text, literal_execute=True))


def _tsquery(text: str) -> ColumnElement[object]:
    return func.websearch_to_tsquery(SIMPLE, _folded(text))


def _word_matches(word: str) -> ColumnElement[bool]:
    """The word as a lexeme of the vector, or close enough (a typo, a prefix) to a word of the folded text."""
    return or_(SEARCH_VECTOR.op("@@")(_tsquery(word)), _folded(word).op("<%")(SEARCH_TEXT))


def search_statement(request: SearchRequest, *, near: bool = True) -> Select[tuple[object, ...]]:
    """One statement of a search page: with ``near``, words may match by trigram similarity too; without, only as
    lexemes (the exact pass). Public because tests EXPLAIN it and bench/search.py times it."""
    query = request.query
    similarity = [func.word_similarity(_folded(word), SEARCH_TEXT) for word in query.words]
    rank = sum(similarity, func.ts_rank_cd(SEARCH_VECTOR, _tsquery(query.websearch()))).cast(Float)
    if near:
        matches = [_word_matches(word) for word in query.words]
        matches += [SEARCH_VECTOR.op("@@")(_tsquery(" ".join(phrase).join('""'))) for phrase in query.phrases]
    else:
        matches = [SEARCH_VECTOR.op("@@")(_tsquery(query.websearch()))]
    found = select(
        Event.id, Event.title, Event.city, Event.venue, Event.starts_at, Event.price_cents, rank.label("score")
    ).where(*matches, Event.status == SCHEDULED)
    if query.excluded:
        found = found.where(not_(SEARCH_VECTOR.op("@@")(_tsquery(query.websearch_excluded()))))
    if request.city is not None:
        found = found.where(Event.city == request.city)
    if request.starts_after is not None:
        found = found.where(Event.starts_at >= request.starts_after)
    if request.starts_before is not None:
        found = found.where(Event.starts_at < request.starts_before)
    ranked = found.subquery("ranked")
    page = select(ranked)
    if request.after is not None:
        page = page.where(tuple_(ranked.c.score, ranked.c.id) < tuple_(*request.after))
    return page.order_by(ranked.c.score.desc(), ranked.c.id.desc()).limit(request.fetch)


async def search_events(session: AsyncSession, request: SearchRequest) -> list[SearchHit]:
    """Up to ``request.fetch`` scheduled events matching the query, best first; none for a query of nothing.

    The exact pass first: when it fills the page, no near match could be on it (see the module docstring), and the
    trigram index is never touched; otherwise the full statement answers."""
    if not request.query.looks_for_something:
        return []
    rows = (await session.execute(search_statement(request, near=False))).mappings().all()
    if len(rows) < request.fetch and request.query.words:
        rows = (await session.execute(search_statement(request))).mappings().all()
    return [SearchHit(**row) for row in rows]
