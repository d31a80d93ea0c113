;; Calls log 100,000 times with a 100-byte message, then answers.
(module
  (import "env" "log" (func $log (param i32 i64)))
  (import "env" "response_set_body" (func $body (param i32 i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "flood flood flood flood flood flood flood flood flood flood flood flood flood flood flood flood flood")
  (data (i32.const 128) "flooded")
  (func (export "handle")
    (local $i i32)
    (local.set $i (i32.const 100000))
    (loop $again
      (call $log (i32.const 0) (i64.const 100))
      (local.set $i (i32.sub (local.get $i) (i32.const 1)))
      (br_if $again (local.get $i)))
    (call $body (i32.const 128) (i64.const 7))))
