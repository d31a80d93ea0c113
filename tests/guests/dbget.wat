;; Probes db_get's edge cases and reports them in the body:
;; a too-small buffer returns the needed length and writes nothing; a
;; zero-capacity buffer is never dereferenced; a missing key is -1.
(module
  (import "env" "db_get" (func $db_get (param i32 i64 i32 i64) (result i64)))
  (import "env" "response_set_body" (func $body (param i32 i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "k")
  (data (i32.const 8) "missing")
  (data (i32.const 64) "SSSS")
  (data (i32.const 128) "small-ok ")
  (data (i32.const 144) "untouched-ok ")
  (data (i32.const 160) "dangling-ok ")
  (data (i32.const 176) "missing-ok ")
  (global $cursor (mut i32) (i32.const 1024))
  (func $append (param $src i32) (param $len i32)
    (memory.copy (global.get $cursor) (local.get $src) (local.get $len))
    (global.set $cursor (i32.add (global.get $cursor) (local.get $len))))
  (func (export "handle")
    (local $n i64)
    ;; the value of "k" is 10 bytes; offer 4
    (if (i64.eq (call $db_get (i32.const 0) (i64.const 1) (i32.const 64) (i64.const 4)) (i64.const 10))
      (then (call $append (i32.const 128) (i32.const 9))))
    (if (i32.eq (i32.load (i32.const 64)) (i32.const 0x53535353))
      (then (call $append (i32.const 144) (i32.const 13))))
    ;; zero capacity with a pointer far out of bounds
    (if (i64.eq (call $db_get (i32.const 0) (i64.const 1) (i32.const 0xFFFFFFF0) (i64.const 0)) (i64.const 10))
      (then (call $append (i32.const 160) (i32.const 12))))
    (if (i64.eq (call $db_get (i32.const 8) (i64.const 7) (i32.const 64) (i64.const 64)) (i64.const -1))
      (then (call $append (i32.const 176) (i32.const 11))))
    (local.set $n (call $db_get (i32.const 0) (i64.const 1) (global.get $cursor) (i64.const 1000)))
    (global.set $cursor (i32.add (global.get $cursor) (i32.wrap_i64 (local.get $n))))
    (call $body (i32.const 1024) (i64.extend_i32_u (i32.sub (global.get $cursor) (i32.const 1024))))))
