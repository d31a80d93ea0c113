;; Counts its calls in a global and answers the count, but traps when the
;; path is /count/trap: with instance = "reuse" the count restarts at 1
;; after a trap, because a trapped instance is never reused.
(module
  (import "env" "request_path" (func $path (param i32 i64) (result i64)))
  (import "env" "response_set_body" (func $body (param i32 i64)))
  (memory (export "memory") 1)
  (global $calls (mut i32) (i32.const 0))
  (func $itoa (param $n i32) (result i32)
    (local $at i32)
    (local.set $at (i32.const 64))
    (loop $digit
      (local.set $at (i32.sub (local.get $at) (i32.const 1)))
      (i32.store8 (local.get $at) (i32.add (i32.const 48) (i32.rem_u (local.get $n) (i32.const 10))))
      (local.set $n (i32.div_u (local.get $n) (i32.const 10)))
      (br_if $digit (local.get $n)))
    (local.get $at))
  (func (export "handle")
    (local $start i32)
    (global.set $calls (i32.add (global.get $calls) (i32.const 1)))
    ;; "/count/trap": byte 7 is 't'
    (drop (call $path (i32.const 128) (i64.const 64)))
    (if (i32.eq (i32.load8_u (i32.const 135)) (i32.const 116)) (then unreachable))
    (local.set $start (call $itoa (global.get $calls)))
    (call $body (local.get $start) (i64.extend_i32_u (i32.sub (i32.const 64) (local.get $start))))))
