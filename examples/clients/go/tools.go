//go:build tools

// The code generators, pinned in go.mod with the libraries they generate
// for: `go install` in this directory builds the versions go.mod names.
package main

import (
	_ "google.golang.org/grpc/cmd/protoc-gen-go-grpc"
	_ "google.golang.org/protobuf/cmd/protoc-gen-go"
)
