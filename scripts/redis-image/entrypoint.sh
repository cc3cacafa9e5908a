#!/bin/sh
# Entrypoint of the harness's locally built Redis image (scripts/docker-engine.sh builds it).
# Does what the official redis image does for our purposes, so testcontainers' RedisContainer
# works unchanged (it runs `redis-server --requirepass PW`):
#   `redis-server ARGS` or just `--flag ...` runs the server as the `redis` user in /data, with
#   protected mode off when no config file is given (the port is published to the host);
#   any other command is executed as given.
set -eu

case "${1:-redis-server}" in
    redis-server) [ "$#" -gt 0 ] && shift ;;
    -*) ;;
    *) exec "$@" ;;
esac

case "${1:-}" in
    *.conf) ;;                                   # a config file decides for itself
    *) set -- --protected-mode no --dir /data "$@" ;;
esac

if [ "$(id -u)" = 0 ]; then
    chown redis:redis /data 2>/dev/null || true
    exec setpriv --reuid=redis --regid=redis --init-groups redis-server "$@"
fi
exec redis-server "$@"
