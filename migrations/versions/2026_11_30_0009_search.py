"""search: the PostgreSQL full-text fallback, kept by the database itself (no application write can forget it).

Why these objects:
- ``unaccent`` (a trusted contrib extension, so the database owner may create it) folds "Zürich" to "zurich".
  It is only STABLE (its dictionary could be reloaded), and a generated column or an index expression needs an
  IMMUTABLE function: ``search_fold`` wraps it with the dictionary named explicitly and is declared IMMUTABLE,
  which is a promise we keep by never editing ``unaccent.rules`` under a live index.
- ``event.search_vector``, a generated ``tsvector``: title weighted A, venue B, city C, through the ``simple``
  configuration (no stemming, no stop words: names of performers and cities are not English words). PostgreSQL
  recomputes it in the same statement that changes a row, so a new or renamed event is findable at its commit.
- ``event.search_text``, the same three fields folded into one string, for ``pg_trgm``'s word similarity: a typo
  ("Zurik") or a prefix ("Ber") still finds the word.
- a GIN index on each: ``@@`` and the trigram ``<%`` both answer from an index, not from a scan of every event.
- ``search_text`` keeps 10 statistics entries, not 100: its only use is estimating ``<%``, whose estimator runs the
  similarity against every most-common value and histogram bound at each planning (measured on 100k events: 22 ms
  of planning with 100, 2 ms with 10, the plan unchanged).

Adding a stored generated column rewrites the table under an ACCESS EXCLUSIVE lock: fine for a catalogue of
thousands of events, a planned window (or a trigger and a backfill in batches) for hundreds of millions.
See notes/elasticsearch.md, "The PostgreSQL fallback".

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SEARCH_FOLD = """
CREATE FUNCTION search_fold(text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
AS $$ SELECT lower(public.unaccent('public.unaccent'::regdictionary, $1)) $$
"""

SEARCH_VECTOR = """
ALTER TABLE event ADD COLUMN search_vector tsvector GENERATED ALWAYS AS (
    setweight(to_tsvector('simple'::regconfig, search_fold(title)), 'A')
    || setweight(to_tsvector('simple'::regconfig, search_fold(venue)), 'B')
    || setweight(to_tsvector('simple'::regconfig, search_fold(city)), 'C')
) STORED
"""

SEARCH_TEXT = """
ALTER TABLE event ADD COLUMN search_text text GENERATED ALWAYS AS (
    search_fold(title || ' ' || venue || ' ' || city)
) STORED
"""


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS unaccent")
    op.execute(SEARCH_FOLD)
    op.execute(SEARCH_VECTOR)
    op.execute(SEARCH_TEXT)
    op.execute("ALTER TABLE event ALTER COLUMN search_text SET STATISTICS 10")
    op.execute("CREATE INDEX ix_event_search_vector ON event USING gin (search_vector)")
    op.execute("CREATE INDEX ix_event_search_text_trgm ON event USING gin (search_text gin_trgm_ops)")


def downgrade() -> None:
    op.execute("DROP INDEX ix_event_search_text_trgm")
    op.execute("DROP INDEX ix_event_search_vector")
    op.execute("ALTER TABLE event DROP COLUMN search_text")
    op.execute("ALTER TABLE event DROP COLUMN search_vector")
    op.execute("DROP FUNCTION search_fold(text)")
    op.execute("DROP EXTENSION IF EXISTS unaccent")
