#!/usr/bin/env bash
# cosign (sigstore's CLI), for the test that `cosign verify-attestation --key` accepts what `image push --sign-key`
# attaches. From Debian's archive (trixie's `cosign` package; bookworm has none): fetched by apt with a private
# sources list and state (the system's apt sources and lists are not touched), so apt checks the .deb against
# Debian's signed index; then checked again against the SHA-256 pinned below, and only the binary is kept.
#
#   bash scripts/cosign.sh [DEST]     # DEST defaults to .venv/bin; exits 0 if cosign is there already
set -euo pipefail

VERSION="2.5.0-2+b5"
SHA256="3b6eadd27f3c4c00bfa7eab5c2397a6a15a763630c7a1d40d06ff60d24799eef"  # cosign_2.5.0-2+b5_amd64.deb
BINARY_SHA256="4fed14e55f861dc2ca99a76f43609da58f3f8f1b8159166f751e9d2f6680287a"  # its usr/bin/cosign
dest="${1:-.venv/bin}"

if [ -x "$dest/cosign" ] && echo "$BINARY_SHA256  $dest/cosign" | sha256sum --check --quiet 2>/dev/null; then
  exit 0
fi
if [ "$(dpkg --print-architecture 2>/dev/null)" != amd64 ]; then
  echo "cosign: only the amd64 package is pinned here; not installed" >&2
  exit 2
fi
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
# the .deb is kept between runs on this machine (checked by hash each time): a fresh clone does not fetch it again
kept="${AP_BUILD_DEB_CACHE:-/var/cache/ap-build}/cosign_${VERSION//:/%3a}_amd64.deb"
deb="$work/cosign_${VERSION//:/%3a}_amd64.deb"
if [ -f "$kept" ] && echo "$SHA256  $kept" | sha256sum --check --quiet 2>/dev/null; then
  cp "$kept" "$deb"
else
  mkdir -p "$work/lists/partial" "$work/cache/archives/partial"
  echo "deb http://deb.debian.org/debian trixie main" >"$work/sources.list"
  apt_opts=(-o "Dir::Etc::sourcelist=$work/sources.list" -o Dir::Etc::sourceparts=- -o "Dir::State::Lists=$work/lists"
            -o "Dir::Cache=$work/cache" -o APT::Sandbox::User=root -qq)
  apt-get "${apt_opts[@]}" update
  (cd "$work" && apt-get "${apt_opts[@]}" download "cosign=$VERSION")
  echo "$SHA256  $deb" | sha256sum --check --quiet
  mkdir -p "$(dirname "$kept")" 2>/dev/null && cp "$deb" "$kept" 2>/dev/null || true
fi
echo "$SHA256  $deb" | sha256sum --check --quiet
dpkg-deb -x "$deb" "$work/root"
mkdir -p "$dest"
echo "$BINARY_SHA256  $work/root/usr/bin/cosign" | sha256sum --check --quiet
install -m 0755 "$work/root/usr/bin/cosign" "$dest/cosign"
echo "cosign $VERSION (Debian) in $dest"
