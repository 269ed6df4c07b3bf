#!/bin/sh
# tests/go/install.sh DIR PACKAGE GOBIN: build PACKAGE into GOBIN at the
# version DIR's go.mod names, from the modules its go.sum lists, with the
# pinned toolchain (go.sh, kept in the user's cache between builds).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
go=$(sh "$here/go.sh" "${XDG_CACHE_HOME:-$HOME/.cache}/recsysd")
cd "$1"
GOTOOLCHAIN=local GOFLAGS=-mod=readonly GOBIN="$3" "$go" install "$2"
