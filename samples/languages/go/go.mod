module serverless-wasm/samples/go-handler

go 1.24
