// A serverless-wasm handler in Go: a WASI preview 1 reactor (GOOS=wasip1,
// -buildmode=c-shared) whose exported `handle` speaks the original ABI
// through go:wasmimport, while fmt, encoding/json and time come from Go's
// standard library over WASI: fmt.Println reaches the route's log and
// time.Sleep sleeps on the shard's timers.
//
// Build (samples/languages/build.sh does it):
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o go-handler.wasm .
//
// Served behind a prefix route (`url_path = "/go/*"`), it answers by the
// last part of the path: hello, json (POST), sleep, exit, fail.
package main

import (
	"encoding/json"
	"fmt"
	"os"
	"strings"
	"time"
	"unsafe"
)

//go:wasmimport env response_set_status_line
func responseSetStatusLine(status int32, reason unsafe.Pointer, length int64)

//go:wasmimport env response_set_header
func responseSetHeader(name unsafe.Pointer, nameLength int64, value unsafe.Pointer, valueLength int64)

//go:wasmimport env response_set_body
func responseSetBody(body unsafe.Pointer, length int64)

//go:wasmimport env request_method
func requestMethod(buf unsafe.Pointer, capacity int64) int64

//go:wasmimport env request_path
func requestPath(buf unsafe.Pointer, capacity int64) int64

//go:wasmimport env request_body
func requestBody(buf unsafe.Pointer, capacity int64) int64

// lookup reads a request value: its length first, then the value.
func lookup(read func(unsafe.Pointer, int64) int64) []byte {
	size := read(nil, 0)
	if size <= 0 {
		return nil
	}
	buf := make([]byte, size)
	return buf[:read(unsafe.Pointer(&buf[0]), size)]
}

func pointer(b []byte) unsafe.Pointer {
	if len(b) == 0 {
		return nil
	}
	return unsafe.Pointer(&b[0])
}

func answer(status int32, contentType string, body []byte) {
	responseSetStatusLine(status, nil, 0)
	name, value := []byte("content-type"), []byte(contentType)
	responseSetHeader(pointer(name), int64(len(name)), pointer(value), int64(len(value)))
	responseSetBody(pointer(body), int64(len(body)))
}

type greeting struct {
	Name string `json:"name"`
}

type reply struct {
	Language string `json:"language"`
	Greeting string `json:"greeting"`
	Bytes    int    `json:"bytes"`
}

// jsonAPI answers {"name": "..."} with a greeting.
func jsonAPI() {
	body := lookup(requestBody)
	var in greeting
	if err := json.Unmarshal(body, &in); err != nil || in.Name == "" {
		out, _ := json.Marshal(map[string]string{"error": "send {\"name\": \"...\"}"})
		answer(400, "application/json", out)
		return
	}
	out, _ := json.Marshal(reply{Language: "go", Greeting: "Hello, " + in.Name, Bytes: len(body)})
	answer(200, "application/json", out)
}

//go:wasmexport handle
func handle() {
	method, path := string(lookup(requestMethod)), string(lookup(requestPath))
	switch path[strings.LastIndex(path, "/")+1:] {
	case "json":
		jsonAPI()
	case "sleep":
		time.Sleep(1500 * time.Millisecond)
		answer(200, "text/plain", []byte("slept 1500 ms\n"))
	case "exit":
		answer(200, "text/plain", []byte("answered, then os.Exit(0)\n"))
		os.Exit(0)
	case "fail":
		panic("the handler failed on purpose")
	default:
		fmt.Println("hello from Go:", method, path)
		answer(200, "text/plain", []byte("Hello from Go\n"))
	}
}

// main is not called in a reactor (c-shared); the runtime starts in
// _initialize.
func main() {}
