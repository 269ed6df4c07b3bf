//go:build tools

// Package tools pins ghz for the suite and the benches: `go install
// github.com/bojand/ghz/cmd/ghz` in this directory builds the version go.mod names, from the
// modules go.sum lists.
package tools

import _ "github.com/bojand/ghz/cmd/ghz"
