#!/bin/sh
# First start: initdb into $PGDATA with $POSTGRES_USER as the superuser (password
# $POSTGRES_PASSWORD, scram-sha-256 over TCP, trust on the local socket) and $POSTGRES_DB
# created. Every start: postgres in the foreground as the postgres user, listening on all
# addresses of the container.
set -eu
user=${POSTGRES_USER:-postgres}
db=${POSTGRES_DB:-$user}
as_pg() { setpriv --reuid postgres --regid postgres --init-groups "$@"; }

mkdir -p "$PGDATA" /var/run/postgresql
chown postgres:postgres "$PGDATA" /var/run/postgresql
chmod 700 "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  if [ -z "${POSTGRES_PASSWORD:-}" ]; then
    echo "calibd-postgres: set POSTGRES_PASSWORD" >&2
    exit 1
  fi
  pw=$(mktemp)
  printf '%s' "$POSTGRES_PASSWORD" >"$pw"
  chown postgres "$pw"
  as_pg initdb -D "$PGDATA" -U "$user" --pwfile="$pw" --auth-local=trust \
    --auth-host=scram-sha-256 --encoding=UTF8 >/dev/null
  rm -f "$pw"
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
  if [ "$db" != "postgres" ]; then
    as_pg pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
    as_pg createdb -U "$user" "$db"
    as_pg pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  fi
  echo "calibd-postgres: initialised $PGDATA (superuser $user, database $db)" >&2
fi
exec setpriv --reuid postgres --regid postgres --init-groups \
  postgres -D "$PGDATA" -c listen_addresses='*'
