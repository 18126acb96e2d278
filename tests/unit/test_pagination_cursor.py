"""The opaque keyset cursor and the ETag rules: round trips, hostile input → 422/412, and page cutting.

See notes/rest_design.md, "Pagination" and "Conditional requests".
"""

from __future__ import annotations

import base64
import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import AwareDatetime, TypeAdapter

from app.api.etag import entity_tag, is_fresh, matching_versions
from app.api.pagination import cut_page, decode_cursor, encode_cursor
from app.api.problems import Problem

KEY: TypeAdapter[tuple[datetime, uuid.UUID]] = TypeAdapter(tuple[AwareDatetime, uuid.UUID])
aware_times = st.datetimes(timezones=st.just(UTC))


@given(aware_times, st.uuids())
def test_a_cursor_round_trips_its_key(starts_at: datetime, event_id: uuid.UUID) -> None:
    cursor = encode_cursor((starts_at, event_id), KEY)
    assert decode_cursor(cursor, KEY) == (starts_at, event_id)
    assert "=" not in cursor
    assert set(cursor) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


@pytest.mark.parametrize(
    "cursor",
    [
        "",
        "not base64 !",
        "a",
        _b64(b"\xff\xfe"),
        _b64(b"{not json"),
        _b64(b'["2026-01-01T00:00:00Z"]'),
        _b64(b'["2026-01-01T00:00:00", "7d0f8f9e-1e49-4c3c-9f8e-3a1d2b1c0d9e"]'),
        _b64(b'["yesterday", "7d0f8f9e-1e49-4c3c-9f8e-3a1d2b1c0d9e"]'),
        _b64(b'{"starts_at": 1}'),
    ],
)
def test_a_bad_cursor_is_a_422_problem_naming_cursor(cursor: str) -> None:
    with pytest.raises(Problem) as caught:
        decode_cursor(cursor, KEY)
    assert caught.value.status_code == 422
    assert caught.value.extensions["errors"][0]["loc"] == ["query", "cursor"]


def test_cut_page_uses_the_extra_row_only_as_proof_of_more() -> None:
    rows = [(datetime(2026, 1, d, tzinfo=UTC), uuid.UUID(int=d)) for d in range(1, 5)]
    items, cursor = cut_page(rows, 3, lambda row: row, KEY)
    assert items == rows[:3]
    assert cursor is not None
    assert decode_cursor(cursor, KEY) == rows[2]
    assert cut_page(rows, 4, lambda row: row, KEY) == (rows, None)


EVENT = uuid.UUID("7d0f8f9e-1e49-4c3c-9f8e-3a1d2b1c0d9e")


def test_etag_changes_with_version_and_resource() -> None:
    assert entity_tag(EVENT, 1) != entity_tag(EVENT, 2)
    assert entity_tag(EVENT, 1) != entity_tag(uuid.UUID(int=1), 1)
    assert entity_tag(EVENT, 1).startswith('"')


@pytest.mark.parametrize(
    ("header", "fresh"),
    [
        (None, False),
        ('"other"', False),
        (entity_tag(EVENT, 3), True),
        (f"W/{entity_tag(EVENT, 3)}", True),
        (f'"x", {entity_tag(EVENT, 3)}', True),
        ("*", True),
        (entity_tag(EVENT, 2), False),
    ],
)
def test_if_none_match_uses_weak_comparison(header: str | None, fresh: bool) -> None:
    assert is_fresh(header, entity_tag(EVENT, 3)) is fresh


def test_a_write_without_if_match_is_428() -> None:
    with pytest.raises(Problem) as caught:
        matching_versions(None, EVENT)
    assert caught.value.status_code == 428


@pytest.mark.parametrize(
    ("header", "versions"),
    [
        (entity_tag(EVENT, 3), {3}),
        (f"{entity_tag(EVENT, 3)}, {entity_tag(EVENT, 4)}", {3, 4}),
        (f"W/{entity_tag(EVENT, 3)}", set()),  # If-Match compares strongly: weak tags match nothing
        (entity_tag(uuid.UUID(int=1), 3), set()),  # another resource's tag
        (f'"{EVENT.hex}-²"', set()),
        ('"garbage"', set()),
        ("*", None),
    ],
)
def test_if_match_becomes_the_versions_a_write_may_replace(header: str, versions: set[int] | None) -> None:
    assert matching_versions(header, EVENT) == (None if versions is None else frozenset(versions))
