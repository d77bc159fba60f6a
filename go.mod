module github.com/conductor-edge/conductor

go 1.26.0

require (
	github.com/quic-go/quic-go v0.65.0
	golang.org/x/crypto v0.59.0
)

require (
	github.com/klauspost/compress v1.20.4 // indirect
	go.uber.org/goleak v1.3.0 // indirect
	golang.org/x/net v0.62.0 // indirect
	golang.org/x/sys v0.50.0 // indirect
)
