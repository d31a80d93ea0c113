;; Imports `log` with i32 sizes instead of the ABI's i64.
(module
  (import "env" "log" (func (param i32 i32)))
  (memory (export "memory") 1)
  (func (export "handle")))
