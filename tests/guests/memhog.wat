;; Grows its memory a page at a time until memory.grow refuses (-1), then
;; answers "refused" with a 200: the limit is enforced inside the guest,
;; not by the host running out of memory.
(module
  (import "env" "response_set_body" (func $body (param i32 i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "refused")
  (func (export "handle")
    (block $refused
      (loop $grow
        (br_if $refused (i32.lt_s (memory.grow (i32.const 1)) (i32.const 0)))
        ;; touch the new page so it is really allocated
        (i32.store (i32.mul (i32.sub (memory.size) (i32.const 1)) (i32.const 65536)) (i32.const 1))
        (br $grow)))
    (call $body (i32.const 0) (i64.const 7))))
