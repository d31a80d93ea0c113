;; Traps: `unreachable` after starting a response.
(module
  (import "env" "response_set_body" (func $body (param i32 i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "partial")
  (func (export "handle")
    (call $body (i32.const 0) (i64.const 7))
    unreachable))
