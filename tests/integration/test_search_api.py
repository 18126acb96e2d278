"""``GET /api/v1/search/events`` through Nginx on the session stack, where no Elasticsearch runs: PostgreSQL answers,
and says so in ``X-Search-Backend`` and on /metrics.

What a person types is found: accents folded both ways, a typo in a city or a performer's name, a prefix, a quoted
phrase, an exclusion; a cancelled event is not found; a renamed event is found by its new name by the very next
request (the ``tsvector`` is a generated column, recomputed by the UPDATE itself). Keyset pages walk every match
exactly once. Bad input is a 422 problem or an empty page, never a 500. Every event here carries a performer name
made for this run, so the shared database's other events never decide an assertion. See notes/elasticsearch.md,
"The PostgreSQL fallback".
"""

from __future__ import annotations

import random
import subprocess
import sys
import urllib.parse
from typing import Any

import pytest

from stack.native.stack import NativeStack
from tests.api_users import ApiUser, call, create_event, new_user
from tests.polling import wait_for
from tests.probes import http


def performer_name() -> str:
    """A made-up name of five syllables no other event has (nor anything close to it, so a typo finds only it)."""
    syllables = random.choices([c + v for c in "bdfgklmnprstvz" for v in "aeiou"], k=5)
    return "".join(syllables).capitalize()


@pytest.fixture(scope="module")
def organizer(stack: NativeStack) -> ApiUser:
    return new_user(stack, organizer=True, label="search-organizer")


def search(stack: NativeStack, user: ApiUser | None = None, **params: object) -> tuple[int, dict[str, str], Any]:
    return call(stack, "GET", f"/api/v1/search/events?{urllib.parse.urlencode(params)}", user=user)


def found(stack: NativeStack, q: str, user: ApiUser | None = None, **params: object) -> list[str]:
    """The titles of the first 100 hits for ``q``, best first."""
    status, headers, page = search(stack, user, q=q, limit=100, **params)
    assert status == 200, page
    assert headers["x-search-backend"] == "postgres"
    return [item["title"] for item in page["items"]]


@pytest.fixture(scope="module")
def catalogue(stack: NativeStack, organizer: ApiUser) -> dict[str, str]:
    name = performer_name()
    titles = {
        "zurich": f"{name} Recital",
        "lisbon": f"Recital of {name}",
        "berlin": f"{name} Late Show",
    }
    create_event(stack, organizer, title=titles["zurich"], city="Zürich", venue="Tonhalle")
    create_event(stack, organizer, title=titles["lisbon"], city="Lisbon", venue="Coliseu")
    create_event(stack, organizer, title=titles["berlin"], city="Berlin", venue="Velodrom")
    return {"name": name, **titles}


def test_accents_are_folded_both_ways(stack: NativeStack, catalogue: dict[str, str]) -> None:
    assert found(stack, f"Zurich {catalogue['name']}") == [catalogue["zurich"]]
    assert found(stack, f"ZÜRICH {catalogue['name']}") == [catalogue["zurich"]]


def test_a_typo_in_a_city_or_a_performer_still_finds_it(stack: NativeStack, catalogue: dict[str, str]) -> None:
    name = catalogue["name"]
    typo = name[:3] + name[4:]  # one letter left out
    assert sorted(found(stack, typo)) == sorted([catalogue["zurich"], catalogue["lisbon"], catalogue["berlin"]])
    assert catalogue["zurich"] in found(stack, "Zurik")


def test_a_prefix_finds_the_word(stack: NativeStack, catalogue: dict[str, str]) -> None:
    assert catalogue["berlin"] in found(stack, "Ber")
    assert set(found(stack, catalogue["name"][:9])) >= {catalogue["zurich"], catalogue["lisbon"]}


def test_a_quoted_phrase_needs_its_words_in_order(stack: NativeStack, catalogue: dict[str, str]) -> None:
    assert found(stack, f'"{catalogue["name"]} recital"') == [catalogue["zurich"]]


def test_an_exclusion_leaves_out_what_it_names(stack: NativeStack, catalogue: dict[str, str]) -> None:
    assert sorted(found(stack, f"{catalogue['name']} -Zurich")) == sorted([catalogue["lisbon"], catalogue["berlin"]])
    assert found(stack, f'{catalogue["name"]} -"late show" -lisbon') == [catalogue["zurich"]]


def test_the_title_outranks_the_city_and_filters_narrow(stack: NativeStack, organizer: ApiUser) -> None:
    name = performer_name()
    create_event(stack, organizer, title=f"Open air in {name}", city="Porto", venue="Praça")
    create_event(stack, organizer, title="Open air", city=name, venue="Praça")
    assert found(stack, name) == [f"Open air in {name}", "Open air"]
    assert found(stack, name, city=name) == ["Open air"]
    assert found(stack, name, starts_after="2027-06-02T00:00:00Z") == []


def test_a_cancelled_event_is_not_found(stack: NativeStack, organizer: ApiUser) -> None:
    name = performer_name()
    event = create_event(stack, organizer, title=f"{name} Farewell")
    assert found(stack, name) == [f"{name} Farewell"]
    stack.primary.sql(f"UPDATE event SET status = 'cancelled' WHERE id = '{event['id']}'", database="refstack")
    assert found(stack, name) == []


def test_a_renamed_event_is_found_by_its_new_name_at_once(stack: NativeStack, organizer: ApiUser) -> None:
    old, new = performer_name(), performer_name()
    event = create_event(stack, organizer, title=f"{old} Live")
    _, headers, _ = call(stack, "GET", f"/api/v1/events/{event['id']}")
    status, _, _ = call(
        stack,
        "PATCH",
        f"/api/v1/events/{event['id']}",
        user=organizer,
        body={"title": f"{new} Live"},
        headers={"If-Match": headers["etag"]},
    )
    assert status == 200
    assert found(stack, new, user=organizer) == [f"{new} Live"]  # the organizer's own write, read at once
    assert found(stack, old, user=organizer) == []


def test_keyset_pages_walk_every_match_exactly_once(stack: NativeStack, organizer: ApiUser) -> None:
    name = performer_name()
    for n in range(25):
        create_event(stack, organizer, title=f"{name} {'night ' * (n % 3)}{n}", city="Lisbon", venue=f"Hall {n}")
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params: dict[str, object] = {"q": name, "limit": 10, **({"cursor": cursor} if cursor else {})}
        status, headers, page = search(stack, None, **params)
        assert (status, headers["x-search-backend"]) == (200, "postgres")
        seen += [item["id"] for item in page["items"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert (pages, len(seen), len(set(seen))) == (3, 25, 25)


@pytest.mark.parametrize(
    ("q", "why"),
    [("", "string_too_short"), ("x" * 201, "string_too_long"), ("jazz\x01", "string_pattern_mismatch")],
)
def test_bad_text_is_a_422_problem(stack: NativeStack, q: str, why: str) -> None:
    status, headers, problem = search(stack, q=q)
    assert status == 422
    assert headers["content-type"] == "application/problem+json"
    assert [(error["loc"], error["type"]) for error in problem["errors"]] == [(["query", "q"], why)]


def test_a_10_kb_paste_is_the_apps_422_and_a_longer_line_the_edges_414_problem(stack: NativeStack) -> None:
    status, headers, problem = call(stack, "GET", f"/api/v1/search/events?q={'word%20' * 1700}")
    assert (status, headers["content-type"]) == (422, "application/problem+json")
    assert [(error["loc"], error["type"]) for error in problem["errors"]] == [(["query", "q"], "string_too_long")]
    status, headers, problem = call(stack, "GET", f"/api/v1/search/events?q={'word%20' * 4000}")
    assert (status, headers["content-type"], problem["status"]) == (414, "application/problem+json", 414)


@pytest.mark.parametrize("q", ['"unbalanced', "!!! ???", "-jazz", '""', "or"])
def test_text_with_nothing_to_find_is_an_empty_page(stack: NativeStack, q: str) -> None:
    """An unclosed quote is a phrase to the end of the text (nothing has "unbalanced" in it here); the others have
    nothing to look for."""
    status, headers, page = search(stack, q=q)
    assert (status, headers["x-search-backend"], page) == (200, "postgres", {"items": [], "next_cursor": None})


def test_metrics_say_postgres_answered_because_elasticsearch_is_absent(stack: NativeStack) -> None:
    search(stack, q="anything")
    _, _, text = http("GET", f"{stack.app.url}/metrics")  # the app's own, summed over its workers
    lines = [line for line in text.decode().splitlines() if line.startswith("search_requests_total")]
    assert any('backend="postgres",reason="absent"' in line for line in lines), lines
    assert not any('backend="elasticsearch"' in line for line in lines)


def test_the_reindex_command_says_there_is_no_elasticsearch_to_rebuild(stack: NativeStack) -> None:
    command = [sys.executable, "-m", "stack", "--state", str(stack.state_path), "reindex"]
    run = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert run.returncode == 1, run.stderr
    assert "REFSTACK_ELASTICSEARCH_URL is not set" in run.stdout


def test_the_worker_hands_every_event_message_to_the_search_indexer_once(
    stack: NativeStack, organizer: ApiUser
) -> None:
    """Without Elasticsearch the indexer has nothing to write, but it is subscribed: the worker records each of the
    event's messages in its inbox under ``search-indexer``, exactly once (created, then renamed)."""
    event = create_event(stack, organizer, title=f"{performer_name()} Premiere")
    _, headers, _ = call(stack, "GET", f"/api/v1/events/{event['id']}")
    renamed = {"title": f"{performer_name()} Premiere"}
    call(
        stack,
        "PATCH",
        f"/api/v1/events/{event['id']}",
        user=organizer,
        body=renamed,
        headers={"If-Match": headers["etag"]},
    )
    applied = (
        "SELECT string_agg(i.message_type, ',' ORDER BY o.id) FROM outbox o JOIN inbox i"
        f" ON i.message_id = o.message_id AND i.consumer = 'search-indexer' WHERE o.aggregate_id = '{event['id']}'"
    )
    wait_for(
        lambda: stack.primary.sql(applied, database="refstack") == "event.created,event.updated",
        timeout_s=30,
        what="the search indexer's inbox rows for the event's two messages",
    )
