#!/bin/sh
# Runs once, inside the official postgres image, when the primary's data directory is first created
# (/docker-entrypoint-initdb.d). It gives the primary what the native provider's recipe gives it:
#   - the application role `app`, owner of the database, member of pg_monitor (replication views);
#   - the `replicator` role and a pg_hba line that lets it stream WAL from another container.
# The image's own pg_hba only allows replication from localhost. See notes/docker.md.
set -eu

psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
    --set app_password="$REFSTACK_APP_DB_PASSWORD" \
    --set replication_password="$REFSTACK_REPLICATION_PASSWORD" <<'SQL'
CREATE ROLE app LOGIN PASSWORD :'app_password' IN ROLE pg_monitor;
ALTER DATABASE :"DBNAME" OWNER TO app;
CREATE ROLE replicator REPLICATION LOGIN PASSWORD :'replication_password';
SQL

echo "host replication replicator all scram-sha-256" >> "$PGDATA/pg_hba.conf"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" -c "SELECT pg_reload_conf()"
