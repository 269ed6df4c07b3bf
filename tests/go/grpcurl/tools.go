//go:build tools

// Package tools pins grpcurl for the suite and the benches: `go install
// github.com/fullstorydev/grpcurl/cmd/grpcurl` in this directory builds the version go.mod names, from the
// modules go.sum lists.
package tools

import _ "github.com/fullstorydev/grpcurl/cmd/grpcurl"
