;; The benchmark's wasm hello, logging one line per request as the original
;; samples do on every call: the same answer as hello.wat, plus a `log`.
(module
  (import "env" "log" (func $log (param i32 i64)))
  (import "env" "response_set_status_line" (func $status (param i32 i32 i64)))
  (import "env" "response_set_header" (func $header (param i32 i64 i32 i64)))
  (import "env" "response_set_body" (func $body (param i32 i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "OK")
  (data (i32.const 16) "Content-Type")
  (data (i32.const 32) "text/plain; charset=utf-8")
  (data (i32.const 64) "Hello, World!")
  (data (i32.const 96) "Hello world with api!")
  (func (export "handle")
    (call $log (i32.const 96) (i64.const 21))
    (call $status (i32.const 200) (i32.const 0) (i64.const 2))
    (call $header (i32.const 16) (i64.const 12) (i32.const 32) (i64.const 25))
    (call $body (i32.const 64) (i64.const 13))))
