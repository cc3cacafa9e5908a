#!/bin/sh
# Entrypoint of the harness's locally built PostgreSQL image (scripts/docker-engine.sh builds it).
# Honours what testcontainers' PostgresContainer and the official postgres image use:
#   POSTGRES_USER (default postgres), POSTGRES_PASSWORD (required unless
#   POSTGRES_HOST_AUTH_METHOD=trust), POSTGRES_DB (default: POSTGRES_USER), PGDATA.
# `postgres -c k=v ...` (or just `-c k=v ...`) runs the server with those options; any other
# command is executed as given.
set -eu

PGDATA=${PGDATA:-/var/lib/postgresql/data}
export PGDATA

case "${1:-postgres}" in
    postgres) [ "$#" -gt 0 ] && shift ;;
    -*) ;;
    *) exec "$@" ;;
esac

if [ "$(id -u)" = 0 ]; then
    mkdir -p "$PGDATA" /var/run/postgresql
    chown postgres:postgres "$PGDATA" /var/run/postgresql
    chmod 700 "$PGDATA"
    RUN="setpriv --reuid=postgres --regid=postgres --init-groups"
else
    RUN=
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
    user=${POSTGRES_USER:-postgres}
    db=${POSTGRES_DB:-$user}
    auth=${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}
    if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$auth" != trust ]; then
        echo "entrypoint: POSTGRES_PASSWORD is not set (set it, or POSTGRES_HOST_AUTH_METHOD=trust)" >&2
        exit 1
    fi
    pwfile=$(mktemp)
    printf '%s\n' "${POSTGRES_PASSWORD:-}" > "$pwfile"
    chown postgres "$pwfile" 2>/dev/null || true
    $RUN initdb --username="$user" --pwfile="$pwfile" --encoding=UTF8 --locale=C.UTF-8 \
        --auth-local=trust --auth-host="$auth" --no-instructions --no-sync >/dev/null
    rm -f "$pwfile"
    {
        echo "host all all all $auth"
    } >> "$PGDATA/pg_hba.conf"
    {
        echo "listen_addresses = '*'"
        echo "jit = off"          # the image carries no LLVM
        echo "unix_socket_directories = '/var/run/postgresql'"
    } >> "$PGDATA/postgresql.auto.conf"
    if [ "$db" != postgres ]; then
        # single-user mode: no server to start and stop just to create one database
        echo "CREATE DATABASE \"$(printf '%s' "$db" | sed 's/"/""/g')\"" \
            | $RUN postgres --single -D "$PGDATA" postgres >/dev/null
    fi
    echo "entrypoint: initialised $PGDATA (user $user, database $db)"
fi

exec $RUN postgres -D "$PGDATA" "$@"
