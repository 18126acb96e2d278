"""The front door in-process: ``Accept`` picks the page or the index, the index mirrors the OpenAPI document, and
the static page names every note, service and verb and runs nothing.

See notes/rest_design.md ("Entry point") and notes/security.md ("Headers, CORS and docs").
"""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from app.api.docs import csp_hash
from app.api.entry_point import LANDING_PAGE, build_entry_router, prefers_json
from stack.base import COMMON_VERBS, REPLICA_VERBS, SERVICE_NAMES

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    ("accept", "json_wanted"),
    [
        ("application/json", True),
        ("application/json, */*;q=0.5", True),
        ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", False),  # a browser
        ("*/*", False),  # curl
        ("", False),
        ("text/html;q=0.5, application/json;q=0.9", True),
        ("application/json;q=0.4, text/html", False),
        ("application/json;q=nonsense", False),
        ("Application/JSON", True),
    ],
)
def test_accept_chooses_between_page_and_index(accept: str, json_wanted: bool) -> None:
    assert prefers_json(accept) is json_wanted


def small_app() -> FastAPI:
    app = FastAPI()
    app.include_router(build_entry_router())

    @app.get("/api/v1/things")
    async def list_things() -> list[int]:
        return []

    @app.post("/api/v1/things")
    async def add_thing() -> int:
        return 1

    @app.delete("/api/v1/things/{thing_id}")
    async def drop_thing(thing_id: int) -> None:
        return None

    @app.get("/health/live")
    async def live() -> str:
        return "ok"

    return app


async def get(path: str, accept: str | None = None) -> httpx.Response:
    headers = {"Accept": accept} if accept else {}
    transport = httpx.ASGITransport(app=small_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://refstack.test") as client:
        return await client.get(path, headers=headers)


async def test_the_index_lists_every_api_path_of_the_document_with_its_methods() -> None:
    answer = await get("/api/v1")
    assert answer.status_code == 200
    assert answer.json() == {
        "title": "refstack API v1",
        "links": {"self": {"href": "/api/v1"}, "openapi": {"href": "/openapi.json"}, "docs": {"href": "/docs"}},
        "resources": [
            {"href": "/api/v1/things", "templated": False, "methods": ["GET", "POST"]},
            {"href": "/api/v1/things/{thing_id}", "templated": True, "methods": ["DELETE"]},
        ],
    }


async def test_the_root_answers_the_index_to_json_clients_and_the_page_to_everyone_else() -> None:
    as_json = await get("/", "application/json")
    assert as_json.headers["Content-Type"] == "application/json"
    assert as_json.json() == (await get("/api/v1")).json()
    page = await get("/", "text/html")
    assert page.headers["Content-Type"].startswith("text/html")
    assert page.content == LANDING_PAGE.read_bytes()
    assert as_json.headers["Vary"] == page.headers["Vary"] == "Accept"


async def test_the_page_runs_nothing_and_only_its_own_style_is_allowed() -> None:
    page = await get("/")
    styles = re.findall(rb"<style>(.*?)</style>", page.content, re.DOTALL)
    assert len(styles) == 1
    assert page.headers["Content-Security-Policy"] == (
        f"default-src 'none'; style-src {csp_hash(styles[0])}; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'none'"
    )
    text = page.text.lower()
    assert "<script" not in text
    assert " on" not in re.sub(r">[^<]*<", "><", text)  # no onload=/onclick= handler attribute in any tag
    assert "://" not in text  # nothing from another host, not even a link
    assert sorted(re.findall(r'href="([^"]+)"', text)) == sorted(
        ["/docs", "/openapi.json", "/api/v1", "/health/ready", "/health/ready"]
    )


def test_the_page_names_every_note_service_and_verb() -> None:
    page = LANDING_PAGE.read_text()
    notes = {f"notes/{note.name}" for note in (REPO / "notes").glob("*.md")}
    assert set(re.findall(r"notes/[a-z_A-Z]+\.md", page)) == notes
    named = page.split("Services: ", 1)[1]
    assert all(f" {service}" in named or f">{service}" in named for service in SERVICE_NAMES)
    for verb in (*COMMON_VERBS, *REPLICA_VERBS):
        assert re.search(rf"[ >]{verb}[ <]", named), verb
