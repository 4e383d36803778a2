// grpcurl, the gRPC client the tests and the e2e drive through the sidecar: built from the Go
// module proxy at this version by tests/grpc/build.sh, cached under ~/.cache/maskmesh/grpc.
module maskmesh.test/grpc/tools

go 1.23

require github.com/fullstorydev/grpcurl v1.9.4
