;; Passes the host a buffer that runs past the end of its memory.
(module
  (import "env" "response_set_body" (func $body (param i32 i64)))
  (memory (export "memory") 1)
  (func (export "handle")
    (call $body (i32.const 65000) (i64.const 1000))))
