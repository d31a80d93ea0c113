;; Imports its memory (as old toolchains did) and echoes the request path.
(module
  (import "env" "request_path" (func $path (param i32 i64) (result i64)))
  (import "env" "response_set_body" (func $body (param i32 i64)))
  (import "env" "memory" (memory 2))
  (func (export "handle")
    (call $body (i32.const 0) (call $path (i32.const 0) (i64.const 1024)))))
