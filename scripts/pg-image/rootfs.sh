#!/bin/sh
# Root file system of the harness's PostgreSQL image, from Debian's packages only.
# Usage: rootfs.sh TARGET_DIR   (as root; needs debootstrap and a reachable Debian mirror)
# This file, entrypoint.sh and image.conf are the image's recipe: their content hash is the
# image tag, so editing any of them builds a new image at the next `docker-engine.sh start`.
set -eu
target=$1
suite=bookworm
mirror=${HARNESS_DEBIAN_MIRROR:-http://deb.debian.org/debian}
packages=postgresql-15

debootstrap --variant=minbase "$suite" "$target" "$mirror" >"$target.debootstrap.log" 2>&1 \
    || { tail -20 "$target.debootstrap.log" >&2; exit 1; }

# Install PostgreSQL without starting anything and without Debian's "main" cluster
# (the entrypoint runs initdb itself).
printf '#!/bin/sh\nexit 101\n' > "$target/usr/sbin/policy-rc.d"
chmod 755 "$target/usr/sbin/policy-rc.d"
mkdir -p "$target/etc/postgresql-common/createcluster.d"
echo "create_main_cluster = false" > "$target/etc/postgresql-common/createcluster.d/no-main.conf"
chroot "$target" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin DEBIAN_FRONTEND=noninteractive LC_ALL=C \
    apt-get install -y -q --no-install-recommends $packages >"$target.apt.log" 2>&1 \
    || { tail -20 "$target.apt.log" >&2; exit 1; }

# Trim: package caches, docs, translations, and the LLVM JIT (the entrypoint sets jit=off).
rm -rf "$target"/var/cache/apt/archives/*.deb "$target"/var/lib/apt/lists/* \
    "$target"/usr/share/doc/* "$target"/usr/share/man/* "$target"/usr/share/locale/* \
    "$target"/usr/lib/postgresql/*/lib/bitcode "$target"/usr/lib/postgresql/*/lib/llvmjit* \
    "$target"/usr/lib/x86_64-linux-gnu/libLLVM-* "$target"/var/log/*.log
install -m 755 "$(dirname "$0")/entrypoint.sh" "$target/usr/local/bin/docker-entrypoint.sh"
