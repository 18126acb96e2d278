#!/usr/bin/env bash
# Installs the Debian packages the native stack runs (see notes/docker.md), only those missing.
# As root it uses apt-get and keeps postinst scripts from starting system-wide services (policy-rc.d);
# otherwise it prints the exact command to run. It never starts, stops or reconfigures a system service.
set -euo pipefail
declare -A wanted=(
  [/usr/lib/postgresql/15/bin/postgres]=postgresql-15
  [/usr/bin/redis-server]=redis-server
  [/usr/lib/rabbitmq/bin/rabbitmq-server]=rabbitmq-server
  [/usr/sbin/nginx]=nginx
  [/usr/sbin/pgbouncer]=pgbouncer
  [/usr/bin/docker-compose]=docker-compose
  [/usr/sbin/nft]=nftables            # a fault diverts one hop of the stack's clients (stack/native/hops.py)
  [/usr/bin/wrk]=wrk                  # bench/cache.py drives the read path and its bare floor with it
)
# `install-debian-packages.sh test` (make test) adds what only the tests use: the browser that renders /docs.
[ "${1:-}" = test ] && wanted[/usr/bin/chromium]=chromium
missing=()
for path in "${!wanted[@]}"; do [ -x "$path" ] || missing+=("${wanted[$path]}"); done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ]; then
  echo "missing Debian packages; run: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
guard=/usr/sbin/policy-rc.d
made_guard=0
if [ ! -e "$guard" ]; then printf '#!/bin/sh\nexit 101\n' > "$guard"; chmod +x "$guard"; made_guard=1; fi
trap '[ "$made_guard" = 1 ] && rm -f "$guard"' EXIT
echo "installing: ${missing[*]}"
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
