;; Sets a status outside 100-999.
(module
  (import "env" "response_set_status_line" (func $status (param i32 i32 i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "Weird")
  (func (export "handle")
    (call $status (i32.const 1000) (i32.const 0) (i64.const 5))))
