;; Connects to the address in env key "backend" and answers the result of
;; tcp_connect as text ("fd 1", or the negative error code).
(module
  (import "env" "db_get" (func $db_get (param i32 i64 i32 i64) (result i64)))
  (import "env" "tcp_connect" (func $connect (param i32 i64) (result i32)))
  (import "env" "response_set_body" (func $body (param i32 i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "backend")
  (func (export "handle")
    (local $len i64)
    (local $fd i32)
    (local.set $len (call $db_get (i32.const 0) (i64.const 7) (i32.const 64) (i64.const 128)))
    (local.set $fd (call $connect (i32.const 64) (local.get $len)))
    ;; answer "fd N" for N in 0..9, or "-N" for N in 1..9
    (if (i32.ge_s (local.get $fd) (i32.const 0))
      (then
        (i32.store8 (i32.const 256) (i32.const 102))
        (i32.store8 (i32.const 257) (i32.const 100))
        (i32.store8 (i32.const 258) (i32.const 32))
        (i32.store8 (i32.const 259) (i32.add (i32.const 48) (local.get $fd))))
      (else
        (i32.store8 (i32.const 256) (i32.const 101))
        (i32.store8 (i32.const 257) (i32.const 114))
        (i32.store8 (i32.const 258) (i32.const 45))
        (i32.store8 (i32.const 259) (i32.sub (i32.const 48) (local.get $fd)))))
    (call $body (i32.const 256) (i64.const 4))))
