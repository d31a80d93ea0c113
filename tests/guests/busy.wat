;; Computes for a while (3,000,000 loop iterations, about 15 M fuel at
;; most) then answers: stays within a generous fuel budget but yields to
;; the shard many times on the way.
(module
  (import "env" "response_set_body" (func $body (param i32 i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "done")
  (func (export "handle")
    (local $i i32)
    (local.set $i (i32.const 3000000))
    (loop $work
      (local.set $i (i32.sub (local.get $i) (i32.const 1)))
      (br_if $work (local.get $i)))
    (call $body (i32.const 0) (i64.const 4))))
