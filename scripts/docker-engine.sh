#!/bin/sh
# A private Docker engine for the harness's `container` providers, plus locally built
# PostgreSQL and Redis images (nothing is ever pulled: no registry needs to be reachable).
#
#   scripts/docker-engine.sh start    # install docker.io if missing, start dockerd, build the
#                                     # images if missing; prints `export ...` lines (also in $RUN/env)
#   scripts/docker-engine.sh stop     # remove every container of this engine, stop dockerd and
#                                     # its containerd; nothing keeps running
#   scripts/docker-engine.sh status   # running or not, and the env lines
#
# Typical use (as root):  eval "$(scripts/docker-engine.sh start)"; ...; scripts/docker-engine.sh stop
#
# Layout:
#   $HARNESS_CACHE_DIR/docker/data   (default ~/.cache/litellm-harness/docker/data) engine data
#       root: images survive between runs, so a warm start does not rebuild the image.
#   $HARNESS_RUNTIME_DIR/docker      (default /tmp/litellm-harness-<uid>/docker) socket, pid
#       file, exec root, log, env file: state of one engine process, gone with `stop`.
# The image recipes are scripts/pg-image/ and scripts/redis-image/ (rootfs.sh, entrypoint.sh,
# image.conf each); a recipe's content hash is its image's tag, so a changed recipe builds a new
# image and older ones are removed.
set -eu

HERE=$(cd "$(dirname "$0")" && pwd)
UID_=$(id -u)
CACHE="${HARNESS_CACHE_DIR:-${HOME:-/root}/.cache/litellm-harness}/docker"
RUN="${HARNESS_RUNTIME_DIR:-/tmp/litellm-harness-$UID_}/docker"
SOCK="$RUN/docker.sock"
PIDFILE="$RUN/dockerd.pid"
EXEC_ROOT="$RUN/exec"
DATA_ROOT="$CACHE/data"
LOG="$RUN/dockerd.log"
ENV_FILE="$RUN/env"
export DOCKER_HOST="unix://$SOCK"

say() { echo "docker-engine: $*" >&2; }
die() { say "error: $*"; exit 1; }
now() { date +%s.%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f s", b - a }'; }

APT_UPDATED=
apt_install() {
    command -v apt-get >/dev/null || die "apt-get not found: install $* yourself"
    mkdir -p "$RUN"
    if [ -z "$APT_UPDATED" ]; then
        apt-get update -qq >"$RUN/apt.log" 2>&1 || { tail -5 "$RUN/apt.log" >&2; die "apt-get update failed"; }
        APT_UPDATED=1
    fi
    # --no-install-recommends: docker.io recommends git, needrestart, apparmor ... none needed here
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >>"$RUN/apt.log" 2>&1 \
        || { tail -20 "$RUN/apt.log" >&2; die "apt-get install $* failed (log: $RUN/apt.log)"; }
}

dockerd_pid() {  # pid of our running dockerd, or nothing
    [ -f "$PIDFILE" ] || return 0
    pid=$(cat "$PIDFILE" 2>/dev/null || true)
    [ -n "$pid" ] && [ -r "/proc/$pid/cmdline" ] || return 0
    if tr '\0' ' ' < "/proc/$pid/cmdline" | grep -q "dockerd.*--pidfile $PIDFILE"; then
        echo "$pid"
    fi
}

engine_answers() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

# pids of processes whose command line mentions our exec root (containerd, shims) -- never by name alone
our_processes() {
    for d in /proc/[0-9]*; do
        [ -r "$d/cmdline" ] || continue
        if tr '\0' ' ' < "$d/cmdline" 2>/dev/null | grep -qF -- "$EXEC_ROOT"; then
            echo "${d#/proc/}"
        fi
    done
}

children_of() {  # direct children of pid $1
    for d in /proc/[0-9]*; do
        ppid=$(awk '{ sub(/^.*\) /, ""); print $2 }' "$d/stat" 2>/dev/null) || continue
        if [ "$ppid" = "$1" ]; then echo "${d#/proc/}"; fi
    done
    return 0
}

kill_orphans() {  # our processes except a live dockerd and its containerd: shims and their containers
    keep=$(dockerd_pid)
    [ -z "$keep" ] || keep="$keep $(children_of "$keep")"
    for p in $(our_processes); do
        case " $keep " in *" $p "*) continue ;; esac
        # a shim's children are containers' init processes: killing one ends its pid namespace
        for c in $(children_of "$p"); do kill -KILL "$c" 2>/dev/null || true; done
        kill -KILL "$p" 2>/dev/null || true
        say "killed leftover process $p"
    done
}

alive() {  # running and not a zombie
    [ -r "/proc/$1/stat" ] && [ "$(awk '{ sub(/^.*\) /, ""); print $1 }' "/proc/$1/stat" 2>/dev/null)" != Z ]
}

unmount_under() {  # lazily unmount whatever a killed engine left mounted under $1
    awk -v p="$1" '$2 ~ "^"p { print $2 }' /proc/mounts | sort -r | while read -r m; do
        umount -l "$m" 2>/dev/null || true
    done
}

start_engine() {
    pid=$(dockerd_pid)
    if [ -n "$pid" ] && engine_answers; then
        say "engine already running (pid $pid) at $DOCKER_HOST"
        return 0
    fi
    [ -n "$pid" ] && { say "dockerd $pid does not answer: restarting it"; stop_engine; }
    # After a killed engine: a containerd pid file naming a dead (or zombie) process makes the
    # new dockerd wait for that containerd and give up. Surviving shims and containers are left
    # to the new engine, which reconnects to them; they are removed below like any leftover.
    cpid=$(cat "$EXEC_ROOT/containerd/containerd.pid" 2>/dev/null || true)
    if [ -n "$cpid" ] && ! alive "$cpid"; then rm -f "$EXEC_ROOT/containerd/containerd.pid"; fi
    rm -f "$SOCK" "$PIDFILE" "$ENV_FILE"
    mkdir -p "$RUN" "$DATA_ROOT" "$EXEC_ROOT"

    t0=$(now)
    # Networking (measured here): the default bridge is needed for port publishing
    # (--bridge=none publishes nothing). Published ports are served by docker's userland proxy,
    # which reaches the container over the bridge, so iptables and IP forwarding are not needed:
    # with --iptables=false the engine leaves the host's firewall, FORWARD policy and
    # ip_forward alone. (--iptables=false with --userland-proxy=false publishes nothing.)
    # Containers get no outbound NAT; PostgreSQL needs none.
    ip link show docker0 >/dev/null 2>&1 || : > "$RUN/docker0.ours"
    setsid dockerd \
        --host "$DOCKER_HOST" \
        --data-root "$DATA_ROOT" \
        --exec-root "$EXEC_ROOT" \
        --pidfile "$PIDFILE" \
        --iptables=false \
        --ip-forward=false \
        --log-level warn \
        >"$LOG" 2>&1 </dev/null 9>&- &  # 9: our lock, not for dockerd
    i=0
    until engine_answers; do
        i=$((i + 1))
        if [ $i -gt 300 ]; then
            tail -20 "$LOG" >&2
            die "dockerd did not answer within 30 s (log: $LOG)"
        fi
        if ! kill -0 $! 2>/dev/null; then
            tail -20 "$LOG" >&2
            die "dockerd exited at start (log: $LOG)"
        fi
        sleep 0.1
    done
    say "engine $(docker version --format '{{.Server.Version}}') started in $(since "$t0") (pid $(cat "$PIDFILE"), data root $DATA_ROOT)"
    # A fresh engine has no users yet: containers kept in the data root by an earlier engine
    # that was killed (or not stopped) are leftovers.
    left=$(docker ps -aq)
    if [ -n "$left" ]; then
        # shellcheck disable=SC2086
        docker rm -f -v $left >/dev/null 2>&1 || true
        say "removed $(echo "$left" | wc -l) leftover container(s) of an earlier engine"
    fi
    kill_orphans  # shims the new containerd did not take over, with their containers
}

recipe_hash() {  # $1: recipe dir
    (cd "$1" && cat rootfs.sh entrypoint.sh image.conf) | sha256sum | cut -c1-12
}

# build_image RECIPE_DIR REPO MAJOR WHAT: sets BUILT to the tag REPO:MAJOR-<recipe hash>
build_image() {
    RECIPE=$1 IMAGE_REPO=$2 major=$3 what=$4
    tag="$IMAGE_REPO:$major-$(recipe_hash "$RECIPE")"
    BUILT=$tag
    if docker image inspect "$tag" >/dev/null 2>&1; then
        say "image $tag present"
        return 0
    fi
    t0=$(now)
    command -v debootstrap >/dev/null || { say "installing debootstrap"; apt_install debootstrap; }
    build=$(mktemp -d "$CACHE/build.XXXXXX")
    # shellcheck disable=SC2064
    trap "rm -rf '$build'" EXIT
    say "building $tag from Debian packages (debootstrap + $what; a minute or two)"
    sh "$RECIPE/rootfs.sh" "$build/root"
    say "root file system ready after $(since "$t0"); importing"
    set --
    while IFS= read -r line; do
        case "$line" in '' | '#'*) continue ;; esac
        set -- "$@" --change "$line"
    done < "$RECIPE/image.conf"
    tar -C "$build/root" --numeric-owner -cf - . | docker import "$@" - "$tag" >/dev/null
    rm -rf "$build"
    trap - EXIT
    docker tag "$tag" "$IMAGE_REPO:$major"
    # older recipes' images only take space
    docker image ls "$IMAGE_REPO" --format '{{.Repository}}:{{.Tag}}' | while read -r old; do
        case "$old" in "$tag" | "$IMAGE_REPO:$major") ;; *) docker rmi "$old" >/dev/null 2>&1 || true ;; esac
    done
    say "image $tag built in $(since "$t0") ($(docker image inspect "$tag" --format '{{.Size}}' | awk '{ printf "%d MB", $1 / 1e6 }'))"
}

write_env() {
    {
        echo "export DOCKER_HOST=$DOCKER_HOST"
        echo "export HARNESS_PG_IMAGE=$PG_IMAGE"
        echo "export HARNESS_REDIS_IMAGE=$REDIS_IMAGE"
        echo "export TESTCONTAINERS_RYUK_DISABLED=true"
    } > "$ENV_FILE.tmp"
    mv "$ENV_FILE.tmp" "$ENV_FILE"
    cat "$ENV_FILE"
}

stop_engine() {
    pid=$(dockerd_pid)
    if [ -n "$pid" ]; then
        if engine_answers; then
            ids=$(docker ps -aq)
            # shellcheck disable=SC2086
            [ -z "$ids" ] || docker rm -f -v $ids >/dev/null 2>&1 || true
            [ -z "$ids" ] || say "removed $(echo "$ids" | wc -l) container(s)"
        fi
        kill -TERM "$pid" 2>/dev/null || true
        i=0
        while [ -e "/proc/$pid" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
        if [ -e "/proc/$pid" ]; then
            say "dockerd $pid ignored SIGTERM for 30 s: killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        say "engine (pid $pid) stopped"
    fi
    # containerd and shims started by our dockerd (matched by our exec root, not by name)
    for p in $(our_processes); do kill -TERM "$p" 2>/dev/null || true; done
    i=0
    while [ -n "$(our_processes)" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
    kill_orphans
    unmount_under "$EXEC_ROOT"
    unmount_under "$DATA_ROOT"
    # the default bridge, when this engine created it
    if [ -e "$RUN/docker0.ours" ]; then
        ip link delete docker0 2>/dev/null || true
        rm -f "$RUN/docker0.ours"
    fi
    rm -f "$SOCK" "$PIDFILE" "$ENV_FILE"
}

lock() {
    mkdir -p "$RUN"
    exec 9>"$RUN/lock"
    flock -w 900 9 || die "another docker-engine.sh has held $RUN/lock for 15 minutes"
}

cmd=${1:-}
case "$cmd" in
    start)
        [ "$UID_" = 0 ] || die "needs root (dockerd); or point DOCKER_HOST at an engine you already have"
        lock
        t_all=$(now)
        if ! command -v dockerd >/dev/null; then
            t0=$(now)
            say "installing Debian's docker.io"
            apt_install docker.io
            say "docker.io installed in $(since "$t0")"
        fi
        command -v docker >/dev/null || die "no docker client on PATH"
        start_engine
        build_image "$HERE/pg-image" litellm-harness/postgres 15 postgresql-15
        PG_IMAGE=$BUILT
        build_image "$HERE/redis-image" litellm-harness/redis 7 redis-server
        REDIS_IMAGE=$BUILT
        say "ready in $(since "$t_all"); env in $ENV_FILE"
        write_env
        ;;
    stop)
        lock
        stop_engine
        ;;
    status)
        pid=$(dockerd_pid)
        if [ -n "$pid" ] && engine_answers; then
            say "running (pid $pid) at $DOCKER_HOST"
            [ -f "$ENV_FILE" ] && cat "$ENV_FILE"
        else
            say "not running"
            exit 1
        fi
        ;;
    *)
        echo "usage: $0 start|stop|status" >&2
        exit 2
        ;;
esac
