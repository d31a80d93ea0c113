;; Calls db_get N times (N = 1000, or 0 with export "zero"), so the cost of
;; one host call is (t(1000) - t(0)) / 1000.
(module
  (import "env" "db_get" (func $db_get (param i32 i64 i32 i64) (result i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "k")
  (func $calls (param $n i32)
    (block $done
      (loop $again
        (br_if $done (i32.eqz (local.get $n)))
        (drop (call $db_get (i32.const 0) (i64.const 1) (i32.const 64) (i64.const 64)))
        (local.set $n (i32.sub (local.get $n) (i32.const 1)))
        (br $again))))
  (func (export "thousand") (call $calls (i32.const 1000)))
  (func (export "zero") (call $calls (i32.const 0))))
