#!/bin/sh
# Root file system of the harness's Redis image, from Debian's packages only (as pg-image/ does).
# Usage: rootfs.sh TARGET_DIR   (as root; needs debootstrap and a reachable Debian mirror)
# This file, entrypoint.sh and image.conf are the image's recipe: their content hash is the
# image tag, so editing any of them builds a new image at the next `docker-engine.sh start`.
set -eu
target=$1
suite=bookworm
mirror=${HARNESS_DEBIAN_MIRROR:-http://deb.debian.org/debian}
packages=redis-server

debootstrap --variant=minbase "$suite" "$target" "$mirror" >"$target.debootstrap.log" 2>&1 \
    || { tail -20 "$target.debootstrap.log" >&2; exit 1; }

# Install without starting anything (the package's service would start a server at install).
printf '#!/bin/sh\nexit 101\n' > "$target/usr/sbin/policy-rc.d"
chmod 755 "$target/usr/sbin/policy-rc.d"
chroot "$target" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LC_ALL=C \
    apt-get install -y -q --no-install-recommends $packages >"$target.apt.log" 2>&1 \
    || { tail -20 "$target.apt.log" >&2; exit 1; }
mkdir -p "$target/data"
chroot "$target" chown redis:redis /data

# Trim: package caches, docs, translations, logs.
rm -rf "$target"/var/cache/apt/archives/*.deb "$target"/var/lib/apt/lists/* \
    "$target"/usr/share/doc/* "$target"/usr/share/man/* "$target"/usr/share/locale/* \
    "$target"/var/log/*.log "$target"/var/log/redis/*
install -m 755 "$(dirname "$0")/entrypoint.sh" "$target/usr/local/bin/docker-entrypoint.sh"
