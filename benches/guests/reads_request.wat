;; Reads the request (method, path, a header) into its memory and answers
;; "Hello, World!": the cost of the request functions.
(module
  (import "env" "request_method" (func $method (param i32 i64) (result i64)))
  (import "env" "request_path" (func $path (param i32 i64) (result i64)))
  (import "env" "request_header" (func $header (param i32 i64 i32 i64) (result i64)))
  (import "env" "response_set_header" (func $set_header (param i32 i64 i32 i64)))
  (import "env" "response_set_body" (func $body (param i32 i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "host")
  (data (i32.const 16) "Content-Type")
  (data (i32.const 32) "text/plain; charset=utf-8")
  (data (i32.const 64) "Hello, World!")
  (func (export "handle")
    (drop (call $method (i32.const 1024) (i64.const 16)))
    (drop (call $path (i32.const 1040) (i64.const 1024)))
    (drop (call $header (i32.const 0) (i64.const 4) (i32.const 2064) (i64.const 256)))
    (call $set_header (i32.const 16) (i64.const 12) (i32.const 32) (i64.const 25))
    (call $body (i32.const 64) (i64.const 13))))
