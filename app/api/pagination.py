"""Keyset pagination: ``?limit=&cursor=`` → ``{"items": [...], "next_cursor": "..." | null}``.

Why keyset, not ``OFFSET``: ``OFFSET n`` makes PostgreSQL read and throw away n rows (page 500 costs 500 pages),
and a row inserted before the reader's position shifts every later page, so the walk repeats or skips rows. A
keyset cursor carries the last row's sort key and the next page is ``WHERE (key) > (:last) ORDER BY key``: one
index range scan whatever the depth, and rows inserted behind the reader never move what lies ahead.

Why opaque: the cursor is base64url of the JSON of that key, so clients pass it back verbatim and we may change
what is inside. A cursor that does not decode to the expected key is a 422 problem, like any bad query value; the
schema states the alphabet and length (so a generated client or fuzzer can tell a cursor from garbage) and says that
only a ``next_cursor`` is accepted, which no pattern can express.
``limit`` above the cap is a 422 too, not a silent clamp: a client asking for 1000 learns the rule at once.
See notes/rest_design.md, "Pagination".
"""

from __future__ import annotations

import base64
from collections.abc import Callable, Sequence
from typing import Annotated, Generic, TypeVar

from fastapi import Query
from pydantic import BaseModel, TypeAdapter

from app.api.problems import Problem

DEFAULT_LIMIT = 20
MAX_LIMIT = 100

Key = TypeVar("Key")
Item = TypeVar("Item")

LimitQuery = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"page size, 1..{MAX_LIMIT}")]
CURSOR_PATTERN = r"^[A-Za-z0-9_-]{1,512}$"  # unpadded base64url, what ``encode_cursor`` writes
CursorQuery = Annotated[
    str | None,
    Query(
        pattern=CURSOR_PATTERN,
        description="next_cursor of the previous page, unchanged: any other value, even of this alphabet, is a 422",
    ),
]


class Page(BaseModel, Generic[Item]):
    items: list[Item]
    next_cursor: str | None


def encode_cursor(key: Key, shape: TypeAdapter[Key]) -> str:
    """The opaque cursor for a sort key: unpadded base64url of its JSON."""
    return base64.urlsafe_b64encode(shape.dump_json(key)).rstrip(b"=").decode("ascii")


def decode_cursor(cursor: str, shape: TypeAdapter[Key]) -> Key:
    """The sort key inside ``cursor``; a 422 problem naming ``cursor`` if it is not one of ours."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        return shape.validate_json(raw)
    except ValueError:  # binascii.Error, UnicodeDecodeError and pydantic's ValidationError all are ValueErrors
        raise Problem(
            422,
            detail="The cursor is not valid; pass next_cursor from a previous page unchanged.",
            extensions={"errors": [{"loc": ["query", "cursor"], "msg": "invalid cursor", "type": "cursor_invalid"}]},
        ) from None


def cut_page(
    rows: Sequence[Item], limit: int, key_of: Callable[[Item], Key], shape: TypeAdapter[Key]
) -> tuple[list[Item], str | None]:
    """Cut a ``limit + 1`` fetch into a page and its cursor: the extra row only proves a next page exists."""
    items = list(rows[:limit])
    return items, encode_cursor(key_of(items[-1]), shape) if len(rows) > limit else None
