#!/bin/sh
# tests/go/build-client.sh SRC DEST: build the Go client example SRC
# (examples/clients/go) in DEST as its README says, with the pinned Go
# toolchain (go.sh): the generators go.mod pins, the stubs from proto/ by
# protoc (Debian's protobuf-compiler), then the program, DEST/client.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$1" && pwd)
proto=$(cd "$src/../../../proto" && pwd)
go=$(sh "$here/go.sh" "${XDG_CACHE_HOME:-$HOME/.cache}/recsysd")
mkdir -p "$2"
cp "$src/go.mod" "$src/go.sum" "$src"/*.go "$2"
cd "$2"
export GOTOOLCHAIN=local GOFLAGS=-mod=readonly
GOBIN="$PWD/bin" "$go" install google.golang.org/protobuf/cmd/protoc-gen-go \
    google.golang.org/grpc/cmd/protoc-gen-go-grpc
mod=recsysd/examples/clients/go
PATH="$PWD/bin:$PATH" protoc -I "$proto" --go_out=. --go-grpc_out=. \
    --go_opt=module=$mod --go-grpc_opt=module=$mod \
    --go_opt=Mrecsys/v1/recommender.proto=$mod/recsysv1 \
    --go-grpc_opt=Mrecsys/v1/recommender.proto=$mod/recsysv1 \
    recsys/v1/recommender.proto
"$go" build -o client .
