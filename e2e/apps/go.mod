// mm-e2e-apps: the gRPC service and the WebSocket app the e2e suite runs behind the sidecar on
// the real cluster (e2e/suite/protocols.sh). Built static by e2e/apps/build.sh from the Go
// module proxy, cached under ~/.cache/maskmesh/e2e-apps; hack/oci/images.sh makes its image.
module maskmesh.test/e2e/apps

go 1.25.0

require (
	github.com/gorilla/websocket v1.5.3
	google.golang.org/grpc v1.83.2
	google.golang.org/protobuf v1.36.12
)

require (
	golang.org/x/net v0.58.0 // indirect
	golang.org/x/sys v0.47.0 // indirect
	golang.org/x/text v0.41.0 // indirect
	google.golang.org/genproto/googleapis/rpc v0.0.0-20260526163538-3dc84a4a5aaa // indirect
)
