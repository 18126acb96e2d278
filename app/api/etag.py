"""Entity tags and conditional requests: ``ETag`` on representations, ``If-None-Match`` → 304, ``If-Match`` on
writes (428 when missing, 412 when stale).

Why: a client that re-reads an unchanged event gets 304 with no body (the server still runs the query, but no
bytes move). A client that edits an event says which version it edited with ``If-Match``; if someone else
changed it meanwhile, the write is refused with 412 instead of silently overwriting their change (the "lost
update"). Requiring the header (428 Precondition Required, RFC 6585) stops clients from skipping the check.

The tag is ``"<id hex>-<version>"``: strong (the JSON for one version is byte-stable), unique per resource, and
it lets a write turn ``If-Match`` straight into ``UPDATE … WHERE version = :v`` with no extra read. Clients must
treat it as opaque. See notes/rest_design.md, "Conditional requests".
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import Header, Response

from app.api.problems import Problem

IfNoneMatch = Annotated[str | None, Header(alias="If-None-Match")]
IfMatch = Annotated[str | None, Header(alias="If-Match")]

ANY = "*"
WEAK = "W/"

NOT_MODIFIED_RESPONSE: dict[int | str, dict[str, Any]] = {
    304: {
        "description": "Not Modified: `If-None-Match` names the current version (or is `*`). No body.",
        "headers": {"ETag": {"description": "The current version's entity tag.", "schema": {"type": "string"}}},
    }
}
"""The 304 as the OpenAPI document states it, for every read that honours ``If-None-Match``."""


def entity_tag(resource_id: uuid.UUID, version: int) -> str:
    return f'"{resource_id.hex}-{version}"'


def _tags(header: str) -> list[str]:
    return [tag.strip() for tag in header.split(",") if tag.strip()]


def is_fresh(if_none_match: str | None, etag: str) -> bool:
    """True when the client's copy is current (weak comparison, RFC 9110 §13.1.2): answer 304."""
    if if_none_match is None:
        return False
    tags = _tags(if_none_match)
    return ANY in tags or etag in (tag.removeprefix(WEAK) for tag in tags)


def not_modified(etag: str) -> Response:
    return Response(status_code=304, headers={"ETag": etag})


def matching_versions(if_match: str | None, resource_id: uuid.UUID) -> frozenset[int] | None:
    """The versions ``If-Match`` allows a write to replace; ``None`` for ``*`` (any). 428 if the header is missing.

    Strong comparison (RFC 9110 §13.1.1): weak tags and tags of other resources match nothing, and an empty set
    makes the conditional update touch no row, which the caller reports as 412.
    """
    if if_match is None:
        raise Problem(
            428,
            kind="precondition-required",
            detail="Send If-Match with the ETag you last read, so concurrent edits cannot overwrite each other.",
        )
    tags = _tags(if_match)
    if ANY in tags:
        return None
    prefix = f'"{resource_id.hex}-'
    versions = {tag[len(prefix) : -1] for tag in tags if tag.startswith(prefix) and tag.endswith('"')}
    return frozenset(int(v) for v in versions if v.isascii() and v.isdigit())


def precondition_failed() -> Problem:
    return Problem(
        412,
        kind="precondition-failed",
        detail="The resource changed since you read it; GET it again and reapply your change.",
    )
