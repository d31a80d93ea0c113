;; Sets a 5 MiB body, more than the default max_response_bytes (4 MiB).
(module
  (import "env" "response_set_body" (func $body (param i32 i64)))
  (memory (export "memory") 81)
  (func (export "handle")
    (call $body (i32.const 0) (i64.const 5242880))))
