;; Opens two connections to the backend named by env key "backend", then
;; traps without closing them: the host must close them.
(module
  (import "env" "db_get" (func $db_get (param i32 i64 i32 i64) (result i64)))
  (import "env" "tcp_connect" (func $connect (param i32 i64) (result i32)))
  (memory (export "memory") 1)
  (data (i32.const 0) "backend")
  (func (export "handle")
    (local $len i64)
    (local.set $len (call $db_get (i32.const 0) (i64.const 7) (i32.const 64) (i64.const 128)))
    (if (i32.lt_s (call $connect (i32.const 64) (local.get $len)) (i32.const 0)) (then unreachable))
    (drop (call $connect (i32.const 64) (local.get $len)))
    unreachable))
