;; Logs "spinning", then spins forever: tests wait for the log line to
;; know the guest is running.
(module
  (import "env" "log" (func $log (param i32 i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "spinning")
  (func (export "handle")
    (call $log (i32.const 0) (i64.const 8))
    (loop $forever (br $forever))))
