#!/bin/sh
# Entrypoint of the streaming replica (runs as the postgres user, in the official postgres image).
# First start: copy the primary with pg_basebackup; -R writes standby.signal and primary_conninfo, -C -S
# creates the physical slot that stops the primary from recycling WAL the replica still needs.
# Later starts: the data directory exists, so it just runs postgres (with the -c settings given as arguments).
# See notes/docker.md.
set -eu

: "${PRIMARY_HOST:?}" "${REFSTACK_REPLICATION_PASSWORD:?}"
SLOT="${REPLICA_SLOT:-replica1}"
export PGPASSWORD="$REFSTACK_REPLICATION_PASSWORD"

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    # A replica rebuilt from scratch must not trip over the slot its previous life left on the primary.
    psql -h "$PRIMARY_HOST" -U replicator -d postgres -v ON_ERROR_STOP=1 -Atc \
        "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
         WHERE slot_name = '$SLOT' AND NOT active"
    pg_basebackup -d "host=$PRIMARY_HOST user=replicator application_name=$SLOT" -D "$PGDATA" \
        -R -X stream -C -S "$SLOT" --checkpoint=fast
    chmod 0700 "$PGDATA"
fi

exec postgres "$@"
