#!/bin/sh
# tests/go/go.sh CACHE_DIR: print the path of the Go toolchain the suite and
# the benches build their Go programs with (grpcurl, ghz), fetching it first
# if CACHE_DIR does not hold it yet.
#
# One pinned release for every machine, whatever Go it has, if any: the
# Go module proxy serves each release as the module golang.org/toolchain
# (what the go command itself downloads for GOTOOLCHAIN), so it comes from
# a registry like every other dependency, and its SHA-256 is checked here.
set -eu

VERSION=go1.25.14
ZIP_SHA256=1bb543a7745d4c6e045a1bfdb4c4d5a0b05b71ee8b8ff72c0a351598b26991a4
MODULE=golang.org/toolchain@v0.0.1-$VERSION.linux-amd64
URL=https://proxy.golang.org/golang.org/toolchain/@v/v0.0.1-$VERSION.linux-amd64.zip

cache=$1
root=$cache/$MODULE
if [ ! -x "$root/bin/go" ]; then
    [ "$(uname -m)" = x86_64 ] || { echo "go.sh: only linux-amd64 is pinned" >&2; exit 1; }
    mkdir -p "$cache"
    tmp=$(mktemp "$cache/.go.zip.XXXXXX")
    trap 'rm -f "$tmp"' EXIT
    echo "go.sh: fetching $MODULE from the Go module proxy" >&2
    curl -sSfL --retry 3 -o "$tmp" "$URL"
    echo "$ZIP_SHA256  $tmp" | sha256sum -c --quiet - >&2
    # Python's zipfile: unzip is not among the packages the project installs.
    python3 - "$tmp" "$cache" <<'PY'
import os, stat, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    for info in z.infolist():
        path = z.extract(info, sys.argv[2])
        mode = info.external_attr >> 16
        if mode & stat.S_IXUSR:
            os.chmod(path, mode & 0o777)
PY
fi
echo "$root/bin/go"
