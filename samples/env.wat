;; Answers from the route's `env` table (its initial state) through
;; `db_get`: the value of key "greeting", or a 404 if the route has none.
;; Exports its memory, as current toolchains do.
(module
  (import "env" "db_get" (func $db_get (param i32 i64 i32 i64) (result i64)))
  (import "env" "response_set_status_line" (func $status (param i32 i32 i64)))
  (import "env" "response_set_body" (func $body (param i32 i64)))
  (memory (export "memory") 1)

  (data (i32.const 0) "greeting")
  (data (i32.const 16) "Not Found")
  (data (i32.const 32) "no greeting configured\n")

  ;; The value goes at 1024; a page holds values up to 63 KiB.
  (func (export "handle")
    (local $len i64)
    (local.set $len (call $db_get (i32.const 0) (i64.const 8) (i32.const 1024) (i64.const 64512)))
    (if (i64.lt_s (local.get $len) (i64.const 0))
      (then
        (call $status (i32.const 404) (i32.const 16) (i64.const 9))
        (call $body (i32.const 32) (i64.const 23))
        (return)))
    (if (i64.gt_s (local.get $len) (i64.const 64512))
      (then (unreachable)))
    (call $body (i32.const 1024) (local.get $len))))
