//go:build tools

// Package tools pins the commands tests/grpc/build.sh builds.
package tools

import _ "github.com/fullstorydev/grpcurl/cmd/grpcurl"
