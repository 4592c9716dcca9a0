#!/usr/bin/env bash
# Make a small Python base image WITHOUT pulling anything: Debian's own python3 packages
# are fetched with apt (the same source `apt-get install` uses), unpacked into a root
# filesystem and imported into the local Docker Engine.
#
#   scripts/make-base-image.sh [TAG]          default TAG: llmops-test/python:3.11-bookworm
#   llmops build APP --base-image llmops-test/python:3.11-bookworm --python 3.11
#
# EXTRA_PACKAGES (space-separated Debian packages) adds packages, e.g. git for the
# controller image, which must have it, and ca-certificates for its https:// clones (the
# bundle /etc/ssl/certs/ca-certificates.crt is made here, as the package's own script
# would on an installed system):
#
#   EXTRA_PACKAGES="git ca-certificates" scripts/make-base-image.sh llmops-test/python-git:3.11-bookworm
#   llmops build --controller --base-image llmops-test/python-git:3.11-bookworm
#
# Such an image is also labelled llmops.dev/base-extra-packages="<the packages>".
#
# Needs: Debian or Ubuntu with apt, dpkg-deb, ldconfig, tar, the docker CLI and a running
# engine. The Python version is the distribution's (Debian 12 "bookworm": 3.11), so build
# with the matching --python. The image is labelled llmops.dev/base-recipe=<hash of this
# script>; the test session rebuilds it only when this script changes. ~10 s, ~60 MB.
set -euo pipefail

tag="${1:-llmops-test/python:3.11-bookworm}"
packages=(python3 python3-venv dash)
read -r -a extra <<<"${EXTRA_PACKAGES:-}"
packages+=("${extra[@]}")
recipe="$(sha256sum "$0" | cut -c1-12)"
arch="$(dpkg --print-architecture)"

work="$(mktemp -d "${TMPDIR:-/tmp}/llmops-base.XXXXXX")"
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/debs/partial" "$work/rootfs"
chmod 0755 "$work" # apt downloads as the _apt user when it can
: >"$work/status" # an empty dpkg status: resolve every dependency, installed here or not

apt_opts=(
  -o "Dir::State::status=$work/status"
  -o "Dir::Cache::archives=$work/debs"
  -o "Debug::NoLocking=1"
  -o "APT::Architecture=$arch"
)
download() {
  apt-get install --download-only -y -qq --no-install-recommends "${apt_opts[@]}" \
    "${packages[@]}" >/dev/null
}
if ! download; then
  if [ "$(id -u)" -eq 0 ]; then
    echo "make-base-image: refreshing the apt package lists and retrying" >&2
    apt-get update -qq && download
  else
    echo "make-base-image: apt could not download ${packages[*]}; run 'apt-get update' as root and retry" >&2
    exit 1
  fi
fi

rootfs="$work/rootfs"
for deb in "$work"/debs/*.deb; do
  dpkg-deb -x "$deb" "$rootfs"
done

# ca-certificates ships the certificates; update-ca-certificates (its postinst, not run
# by dpkg-deb -x) would concatenate them into the bundle git, curl and OpenSSL read
if [ -d "$rootfs/usr/share/ca-certificates" ]; then
  mkdir -p "$rootfs/etc/ssl/certs"
  find "$rootfs/usr/share/ca-certificates" -name '*.crt' -type f -print0 | sort -z |
    xargs -0 -r cat >"$rootfs/etc/ssl/certs/ca-certificates.crt"
  if [ ! -s "$rootfs/etc/ssl/certs/ca-certificates.crt" ]; then
    echo "make-base-image: ca-certificates was unpacked but holds no certificate" >&2
    exit 1
  fi
fi

# users: root and the unprivileged user the llmops images run as (10001)
cat >"$rootfs/etc/passwd" <<'PASSWD'
root:x:0:0:root:/root:/bin/sh
llmops:x:10001:10001:llmops:/tmp:/usr/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin
PASSWD
cat >"$rootfs/etc/group" <<'GROUP'
root:x:0:
llmops:x:10001:
nogroup:x:65534:
GROUP
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$rootfs/etc/nsswitch.conf"
printf 'include /etc/ld.so.conf.d/*.conf\n' >"$rootfs/etc/ld.so.conf"
mkdir -p "$rootfs/tmp" "$rootfs/root" "$rootfs/var/tmp"
chmod 1777 "$rootfs/tmp" "$rootfs/var/tmp"
chmod 0700 "$rootfs/root"
ldconfig -r "$rootfs"
# the interpreter must start and make a venv with pip (what llmops images do first)
if [ ! -x "$rootfs/usr/bin/python3" ]; then
  echo "make-base-image: no /usr/bin/python3 in the unpacked packages" >&2
  exit 1
fi

changes=(
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
  --change 'ENV LANG=C.UTF-8'
  --change "LABEL llmops.dev/base-recipe=$recipe"
)
if [ "${#extra[@]}" -gt 0 ]; then
  changes+=(--change "LABEL llmops.dev/base-extra-packages=\"${extra[*]}\"")
fi
tar --numeric-owner --owner=0 --group=0 -C "$rootfs" -c . |
  docker import "${changes[@]}" --change 'CMD ["/usr/bin/python3"]' - "$tag" >/dev/null
docker run --rm "$tag" /usr/bin/python3 -c 'import ensurepip, ssl, sqlite3, venv' \
  || { echo "make-base-image: $tag was imported but python3 does not start in it" >&2; exit 1; }
echo "$tag"
