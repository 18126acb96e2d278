"""``GET /api/v1/search/events``: events ranked by relevance to what a person typed, a keyset page at a time.

Why these rules at the edge: ``q`` is 1 to 200 characters with no control characters (the schema says so, and a
10 kB paste or a NUL is a 422 before any engine sees it); anything else is read by the domain's query reader, which
never fails: unbalanced quotes close at the end, punctuation separates words, and text with nothing to look for
(only punctuation, only exclusions) is an empty page, not an error. ``X-Search-Backend`` says which engine answered;
the cursor names it too, so the next page comes from the same engine (app/services/search.py). See
notes/elasticsearch.md and notes/rest_design.md, "Pagination".
"""

from __future__ import annotations

import uuid
from typing import Annotated, Literal

from fastapi import APIRouter, Query, Response
from pydantic import Field, TypeAdapter

from app.api.deps import ReadsDep, StateDep
from app.api.pagination import DEFAULT_LIMIT, CursorQuery, LimitQuery, Page, cut_page, decode_cursor
from app.api.problem_table import ProblemTable
from app.api.problems import Problem
from app.api.v1.schemas import NO_NUL_PATTERN, EventHit, Moment
from app.domain.search_query import parse_query
from app.search.page import SearchKey, SearchRequest
from app.services.search import SearchUnavailable, search_on_postgres

BACKEND_HEADER = "X-Search-Backend"
Q_PATTERN = r"^[^\x00-\x1f\x7f]*$"
SEARCH_KEY: TypeAdapter[SearchKey] = TypeAdapter(
    tuple[Literal["elasticsearch", "postgres"], Annotated[float, Field(allow_inf_nan=False)], uuid.UUID]
)


def search_unavailable(error: SearchUnavailable) -> Problem:
    return Problem(
        503,
        kind="search-unavailable",
        detail="The search engine that made this cursor cannot answer now; start the search again without it.",
        headers={"Retry-After": str(max(1, round(error.retry_after_s)))},
    )


SEARCH_PROBLEMS = ProblemTable({SearchUnavailable: search_unavailable})
QText = Annotated[
    str,
    Query(
        min_length=1,
        max_length=200,
        pattern=Q_PATTERN,
        description='what a person types: words (a typo or a prefix still matches), "quoted phrases", -exclusions',
    ),
]


def build_search_router() -> APIRouter:
    api = APIRouter(tags=["search"])

    @api.get(
        "/search/events",
        response_model=Page[EventHit],
        responses={
            200: {
                "headers": {
                    BACKEND_HEADER: {
                        "description": "the engine that answered",
                        "schema": {"type": "string", "enum": ["elasticsearch", "postgres"]},
                    }
                }
            }
        },
    )
    async def events(
        reads: ReadsDep,
        state: StateDep,
        response: Response,
        q: QText,
        city: Annotated[str | None, Query(min_length=1, max_length=200, pattern=NO_NUL_PATTERN)] = None,
        starts_after: Moment | None = None,
        starts_before: Moment | None = None,
        limit: LimitQuery = DEFAULT_LIMIT,
        cursor: CursorQuery = None,
    ) -> Page[EventHit]:
        key = decode_cursor(cursor, SEARCH_KEY) if cursor is not None else None
        request = SearchRequest(
            query=parse_query(q),
            city=city,
            starts_after=starts_after,
            starts_before=starts_before,
            after=(key[1], key[2]) if key is not None else None,
            fetch=limit + 1,
        )
        with SEARCH_PROBLEMS.translating():
            result = await state["search"].search(
                request, lambda r: reads.run(lambda uows: search_on_postgres(uows, r)), key[0] if key else None
            )
        response.headers[BACKEND_HEADER] = result.backend
        items, next_cursor = cut_page(result.hits, limit, result.key_of, SEARCH_KEY)
        hits = [EventHit.model_validate(hit, from_attributes=True) for hit in items]
        return Page[EventHit](items=hits, next_cursor=next_cursor)

    return api
