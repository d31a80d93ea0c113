;; Echoes the request back through the request functions of the extended
;; ABI: method, path with query, the X-Echo header and the body.
;;
;;   method: POST
;;   path: /echo?x=1
;;   x-echo: hello
;;   body: <the body>
(module
  (import "env" "request_method" (func $method (param i32 i64) (result i64)))
  (import "env" "request_path" (func $path (param i32 i64) (result i64)))
  (import "env" "request_header" (func $header (param i32 i64 i32 i64) (result i64)))
  (import "env" "request_body" (func $req_body (param i32 i64) (result i64)))
  (import "env" "response_set_header" (func $set_header (param i32 i64 i32 i64)))
  (import "env" "response_set_body" (func $body (param i32 i64)))
  (memory (export "memory") 1)

  (data (i32.const 0) "method: ")
  (data (i32.const 16) "\npath: ")
  (data (i32.const 32) "\nx-echo: ")
  (data (i32.const 48) "\nbody: ")
  (data (i32.const 64) "x-echo")
  (data (i32.const 80) "(none)")
  (data (i32.const 96) "Content-Type")
  (data (i32.const 112) "text/plain; charset=utf-8")

  ;; The response is assembled from offset 4096 on.
  (global $cursor (mut i32) (i32.const 4096))

  (func $append (param $src i32) (param $len i32)
    (memory.copy (global.get $cursor) (local.get $src) (local.get $len))
    (global.set $cursor (i32.add (global.get $cursor) (local.get $len))))

  ;; Makes room for `len` more bytes after the cursor; traps if the route's
  ;; memory_limit does not allow it (the request is then a 500).
  (func $reserve (param $len i64)
    (local $need i64)
    (local.set $need (i64.add (i64.extend_i32_u (global.get $cursor)) (local.get $len)))
    (block $done
      (loop $grow
        (br_if $done (i64.le_u (local.get $need)
          (i64.mul (i64.extend_i32_u (memory.size)) (i64.const 65536))))
        (if (i32.lt_s (memory.grow (i32.const 1)) (i32.const 0)) (then (unreachable)))
        (br $grow))))

  ;; Appends what a request function returns: asks for the size with an
  ;; empty buffer, reserves it, then copies. `(none)` when absent.
  (func $append_value (param $fetch i32) (param $name i32) (param $name_len i64)
    (local $len i64)
    (local.set $len (call $fetch_into (local.get $fetch) (local.get $name) (local.get $name_len) (i32.const 0) (i64.const 0)))
    (if (i64.lt_s (local.get $len) (i64.const 0))
      (then (call $append (i32.const 80) (i32.const 6)) (return)))
    (call $reserve (local.get $len))
    (drop (call $fetch_into (local.get $fetch) (local.get $name) (local.get $name_len) (global.get $cursor) (local.get $len)))
    (global.set $cursor (i32.add (global.get $cursor) (i32.wrap_i64 (local.get $len)))))

  (func $fetch_into (param $which i32) (param $name i32) (param $name_len i64) (param $ptr i32) (param $cap i64) (result i64)
    (if (result i64) (i32.eq (local.get $which) (i32.const 0))
      (then (call $method (local.get $ptr) (local.get $cap)))
      (else (if (result i64) (i32.eq (local.get $which) (i32.const 1))
        (then (call $path (local.get $ptr) (local.get $cap)))
        (else (if (result i64) (i32.eq (local.get $which) (i32.const 2))
          (then (call $header (local.get $name) (local.get $name_len) (local.get $ptr) (local.get $cap)))
          (else (call $req_body (local.get $ptr) (local.get $cap)))))))))

  (func (export "handle")
    (global.set $cursor (i32.const 4096))
    (call $append (i32.const 0) (i32.const 8))
    (call $append_value (i32.const 0) (i32.const 0) (i64.const 0))
    (call $append (i32.const 16) (i32.const 7))
    (call $append_value (i32.const 1) (i32.const 0) (i64.const 0))
    (call $append (i32.const 32) (i32.const 9))
    (call $append_value (i32.const 2) (i32.const 64) (i64.const 6))
    (call $append (i32.const 48) (i32.const 7))
    (call $append_value (i32.const 3) (i32.const 0) (i64.const 0))
    (call $set_header (i32.const 96) (i64.const 12) (i32.const 112) (i64.const 25))
    (call $body (i32.const 4096) (i64.extend_i32_u (i32.sub (global.get $cursor) (i32.const 4096))))))
