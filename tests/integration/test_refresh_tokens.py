"""Rotating refresh tokens through Nginx against the real primary: rotation, reuse detection, logout, races.

Every test logs in a fresh account, so each works on its own token family. See notes/security.md, "Tokens".
"""

from __future__ import annotations

import asyncio
import secrets
from collections import Counter

import httpx

from app.security.refresh_tokens import refresh_token_hash
from stack.native.stack import NativeStack
from tests.api_users import call, event_body
from tests.refresh_sessions import assert_refused, login, rotated


def family_links(stack: NativeStack, token: str) -> list[tuple[bool, bool]]:
    """(spent, revoked) of every link in the family of ``token``, oldest first."""
    rows = stack.primary.sql(
        "SELECT spent_at IS NOT NULL, revoked_at IS NOT NULL FROM refresh_token WHERE family_id = "
        f"(SELECT family_id FROM refresh_token WHERE token_hash = '{refresh_token_hash(token)}') "
        "ORDER BY created_at, spent_at NULLS LAST",
        database="refstack",
    )
    return [(spent == "t", revoked == "t") for spent, revoked in (line.split("|") for line in rows.splitlines())]


def test_refresh_rotates_and_the_old_token_is_spent(stack: NativeStack) -> None:
    first = login(stack)
    second = rotated(stack, first.refresh_token)
    status, _, me = call(stack, "GET", "/api/v1/me", headers={"Authorization": f"Bearer {second.access_token}"})
    assert status == 200
    assert me["id"] == first.user_id
    assert family_links(stack, second.refresh_token) == [(True, False), (False, False)]
    assert_refused(stack, first.refresh_token)


def test_reusing_a_spent_token_revokes_the_whole_family(stack: NativeStack) -> None:
    first = login(stack)
    second = rotated(stack, first.refresh_token)
    third = rotated(stack, second.refresh_token)
    other_login = login(stack)
    assert_refused(stack, first.refresh_token)  # a copy of a spent token: someone else holds the chain
    assert_refused(stack, third.refresh_token)  # so the newest link stops working too
    assert family_links(stack, third.refresh_token) == [(True, True), (True, True), (False, True)]
    rotated(stack, other_login.refresh_token)  # other families are untouched


def test_logout_revokes_the_family_and_is_idempotent(stack: NativeStack) -> None:
    first = login(stack)
    second = rotated(stack, first.refresh_token)
    elsewhere = login(stack)
    for token in (second.refresh_token, second.refresh_token, secrets.token_urlsafe(32)):
        status, _, body = call(stack, "POST", "/api/v1/auth/logout", body={"refresh_token": token})
        assert (status, body) == (204, None)
    assert_refused(stack, second.refresh_token)
    assert all(revoked for _, revoked in family_links(stack, second.refresh_token))
    rotated(stack, elsewhere.refresh_token)  # logging out one session leaves the others alone


async def test_concurrent_refreshes_with_one_token_have_exactly_one_winner(stack: NativeStack) -> None:
    session = await asyncio.to_thread(login, stack)
    url = f"{stack.nginx.url}/api/v1/auth/refresh"
    async with httpx.AsyncClient(timeout=10) as client:
        answers = await asyncio.gather(
            *(client.post(url, json={"refresh_token": session.refresh_token}) for _ in range(10))
        )
    assert Counter(answer.status_code for answer in answers) == Counter({200: 1, 401: 9})
    winner = next(answer.json() for answer in answers if answer.status_code == 200)
    # The nine losers presented a spent token, which is what theft looks like: the winner's successor is revoked too.
    assert_refused(stack, winner["refresh_token"])
    assert len(family_links(stack, session.refresh_token)) == 2


def test_only_a_hash_of_the_token_is_stored(stack: NativeStack) -> None:
    first = login(stack)
    second = rotated(stack, first.refresh_token)
    for token in (first.refresh_token, second.refresh_token):
        stored = stack.primary.sql(
            f"SELECT count(*) FROM refresh_token WHERE token_hash = '{refresh_token_hash(token)}'", database="refstack"
        )
        leaked = stack.primary.sql(
            f"SELECT count(*) FROM refresh_token r WHERE strpos(r::text, '{token}') > 0", database="refstack"
        )
        assert (stored, leaked) == ("1", "0")


def test_an_expired_refresh_token_is_refused(stack: NativeStack) -> None:
    session = login(stack)
    stack.primary.sql(
        "UPDATE refresh_token SET expires_at = now() - interval '1 second' "
        f"WHERE token_hash = '{refresh_token_hash(session.refresh_token)}'",
        database="refstack",
    )
    assert_refused(stack, session.refresh_token)


def test_the_new_access_token_carries_the_current_role(stack: NativeStack) -> None:
    session = login(stack)
    bearer = {"Authorization": f"Bearer {session.access_token}"}
    assert call(stack, "POST", "/api/v1/events", body=event_body(), headers=bearer)[0] == 403
    stack.primary.sql(f"UPDATE app_user SET role = 'organizer' WHERE id = '{session.user_id}'", database="refstack")
    promoted = {"Authorization": f"Bearer {rotated(stack, session.refresh_token).access_token}"}
    assert call(stack, "POST", "/api/v1/events", body=event_body(), headers=promoted)[0] == 201


def test_any_string_that_is_not_a_live_refresh_token_is_the_same_401(stack: NativeStack) -> None:
    """No length or shape rule answers 422 first and so tells a near miss from any other refused token."""
    session = login(stack)
    for token in ("", "garbage", session.access_token, "x" * 10_000, session.refresh_token + "x"):
        assert_refused(stack, token)
    rotated(stack, session.refresh_token)  # none of them touched the real one


def test_a_refresh_body_with_unknown_or_missing_fields_is_422(stack: NativeStack) -> None:
    session = login(stack)
    extra = {"refresh_token": session.refresh_token, "user_id": session.user_id}
    for body in (extra, {}):
        status, _, problem = call(stack, "POST", "/api/v1/auth/refresh", body=body)
        assert status == 422, problem
    rotated(stack, session.refresh_token)  # a refused body spent nothing
