;; Calls host functions with arguments taken from the request body (the
;; fuzz input). The body is a sequence of 25-byte records:
;;   op: u8 | a: i32 | b: i64 | c: i32 | d: i64   (little-endian)
;; op % 30 picks the call (16..23: the kv_v1 functions, 24..29: WASI preview 1); pointers, lengths and handles are used as they
;; come, so most calls pass out-of-bounds buffers or bad handles: the host
;; must answer with a trap or an error code, never crash.
(module
  (import "env" "log" (func $log (param i32 i64)))
  (import "env" "response_set_status_line" (func $status (param i32 i32 i64)))
  (import "env" "response_set_header" (func $set_header (param i32 i64 i32 i64)))
  (import "env" "response_add_header" (func $add_header (param i32 i64 i32 i64)))
  (import "env" "response_set_body" (func $body (param i32 i64)))
  (import "env" "db_get" (func $db_get (param i32 i64 i32 i64) (result i64)))
  (import "env" "request_method" (func $method (param i32 i64) (result i64)))
  (import "env" "request_path" (func $path (param i32 i64) (result i64)))
  (import "env" "request_header" (func $header (param i32 i64 i32 i64) (result i64)))
  (import "env" "request_body" (func $req_body (param i32 i64) (result i64)))
  (import "env" "tcp_connect" (func $connect (param i32 i64) (result i32)))
  (import "env" "tcp_read" (func $read (param i32 i32 i64) (result i64)))
  (import "env" "tcp_write" (func $write (param i32 i32 i64) (result i64)))
  (import "env" "tcp_close" (func $close (param i32) (result i32)))
  (import "kv_v1" "open" (func $kv_open (param i32 i64) (result i32)))
  (import "kv_v1" "get" (func $kv_get (param i32 i32 i64 i32 i64) (result i64)))
  (import "kv_v1" "set" (func $kv_set (param i32 i32 i64 i32 i64) (result i32)))
  (import "kv_v1" "delete" (func $kv_delete (param i32 i32 i64) (result i32)))
  (import "kv_v1" "increment" (func $kv_increment (param i32 i32 i64 i64 i32) (result i32)))
  (import "kv_v1" "list_keys" (func $kv_list (param i32 i64 i32 i64 i32) (result i64)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll_oneoff (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get" (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get" (func $environ_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock_time_get (param i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "random_get" (func $random_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 2 4)
  (data (i32.const 0) "backend")
  (data (i32.const 8) "default")

  ;; The input is copied to 65536 (the second page) and read from there.
  (func (export "handle")
    (local $len i64) (local $at i32) (local $end i32)
    (local $op i32) (local $a i32) (local $b i64) (local $c i32) (local $d i64) (local $addr i64)
    (local.set $len (call $req_body (i32.const 65536) (i64.const 65536)))
    (if (i64.gt_u (local.get $len) (i64.const 65536)) (then (return)))
    (local.set $at (i32.const 65536))
    (local.set $end (i32.add (i32.const 65536) (i32.wrap_i64 (local.get $len))))
    (block $done
      (loop $next
        (br_if $done (i32.gt_u (i32.add (local.get $at) (i32.const 25)) (local.get $end)))
        (local.set $op (i32.rem_u (i32.load8_u (local.get $at)) (i32.const 30)))
        (local.set $a (i32.load offset=1 (local.get $at)))
        (local.set $b (i64.load offset=5 (local.get $at)))
        (local.set $c (i32.load offset=13 (local.get $at)))
        (local.set $d (i64.load offset=17 (local.get $at)))
        (local.set $at (i32.add (local.get $at) (i32.const 25)))
        (block $call
          (br_if $call (i32.ne (local.get $op) (i32.const 0)))
          (call $log (local.get $a) (local.get $b)))
        (block $call
          (br_if $call (i32.ne (local.get $op) (i32.const 1)))
          (call $status (local.get $a) (local.get $c) (local.get $b)))
        (block $call
          (br_if $call (i32.ne (local.get $op) (i32.const 2)))
          (call $set_header (local.get $a) (local.get $b) (local.get $c) (local.get $d)))
        (block $call
          (br_if $call (i32.ne (local.get $op) (i32.const 3)))
          (call $add_header (local.get $a) (local.get $b) (local.get $c) (local.get $d)))
        (block $call
          (br_if $call (i32.ne (local.get $op) (i32.const 4)))
          (call $body (local.get $a) (local.get $b)))
        (block $call
          (br_if $call (i32.ne (local.get $op) (i32.const 5)))
          (drop (call $db_get (local.get $a) (local.get $b) (local.get $c) (local.get $d))))
        (block $call
          (br_if $call (i32.ne (local.get $op) (i32.const 6)))
          (drop (call $method (local.get $a) (local.get $b))))
        (block $call
          (br_if $call (i32.ne (local.get $op) (i32.const 7)))
          (drop (call $path (local.get $a) (local.get $b))))
        (block $call
          (br_if $call (i32.ne (local.get $op) (i32.const 8)))
          (drop (call $header (local.get $a) (local.get $b) (local.get $c) (local.get $d))))
        (block $call
          (br_if $call (i32.ne (local.get $op) (i32.const 9)))
          (drop (call $req_body (local.get $a) (local.get $b))))
        (block $call
          (br_if $call (i32.ne (local.get $op) (i32.const 10)))
          (drop (call $connect (local.get $a) (local.get $b))))
        (block $call
          (br_if $call (i32.ne (local.get $op) (i32.const 11)))
          (drop (call $read (local.get $a) (local.get $c) (local.get $b))))
        (block $call
          (br_if $call (i32.ne (local.get $op) (i32.const 12)))
          (drop (call $write (local.get $a) (local.get $c) (local.get $b))))
        (block $call
          (br_if $call (i32.ne (local.get $op) (i32.const 13)))
          (drop (call $close (local.get $a))))
        (block $call
          (br_if $call (i32.ne (local.get $op) (i32.const 14)))
          (drop (memory.grow (i32.and (local.get $a) (i32.const 3)))))
        ;; 15: connect to the allowed backend named in env key "backend"
        (block $call
          (br_if $call (i32.ne (local.get $op) (i32.const 15)))
          (local.set $addr (call $db_get (i32.const 0) (i64.const 7) (i32.const 16) (i64.const 64)))
          (if (i64.gt_s (local.get $addr) (i64.const 0))
            (then (drop (call $connect (i32.const 16) (local.get $addr))))))
        ;; 16..23: kv_v1, handles from a & 3 (0 is never valid, 1 usually is)
        (block $call
          (br_if $call (i32.ne (local.get $op) (i32.const 16)))
          (drop (call $kv_open (local.get $a) (local.get $b))))
        (block $call
          (br_if $call (i32.ne (local.get $op) (i32.const 17)))
          (drop (call $kv_open (i32.const 8) (i64.const 7))))
        (block $call
          (br_if $call (i32.ne (local.get $op) (i32.const 18)))
          (drop (call $kv_get (i32.and (local.get $a) (i32.const 3)) (local.get $c) (local.get $b) (local.get $c) (local.get $d))))
        (block $call
          (br_if $call (i32.ne (local.get $op) (i32.const 19)))
          (drop (call $kv_set (i32.and (local.get $a) (i32.const 3)) (local.get $c) (local.get $b) (local.get $c) (local.get $d))))
        (block $call
          (br_if $call (i32.ne (local.get $op) (i32.const 20)))
          (drop (call $kv_delete (i32.and (local.get $a) (i32.const 3)) (local.get $c) (local.get $b))))
        (block $call
          (br_if $call (i32.ne (local.get $op) (i32.const 21)))
          (drop (call $kv_increment (i32.and (local.get $a) (i32.const 3)) (local.get $c) (local.get $b) (local.get $d) (local.get $c))))
        (block $call
          (br_if $call (i32.ne (local.get $op) (i32.const 22)))
          (drop (call $kv_list (i32.and (local.get $a) (i32.const 3)) (local.get $d) (local.get $c) (local.get $b) (local.get $c))))
        (block $call
          (br_if $call (i32.ne (local.get $op) (i32.const 23)))
          (drop (call $kv_list (i32.const 1) (i64.const 0) (i32.const 4096) (i64.const 4096) (i32.const 80))))
        ;; WASI: poll_oneoff as it comes (subscriptions wherever a points).
        (block $call
          (br_if $call (i32.ne (local.get $op) (i32.const 24)))
          (drop (call $poll_oneoff (local.get $a) (local.get $c)
            (i32.and (i32.wrap_i64 (local.get $b)) (i32.const 7)) (i32.wrap_i64 (local.get $d)))))
        ;; One well-formed clock subscription at 256 (clock id, a timeout
        ;; under a millisecond, relative or absolute from the input); events
        ;; at 512, their count at 768.
        (block $call
          (br_if $call (i32.ne (local.get $op) (i32.const 25)))
          (i64.store (i32.const 256) (i64.extend_i32_u (local.get $a)))
          (i64.store (i32.const 264) (i64.const 0))
          (i32.store (i32.const 272) (i32.and (local.get $c) (i32.const 3)))
          (i64.store (i32.const 280) (i64.and (local.get $b) (i64.const 0xfffff)))
          (i64.store (i32.const 288) (i64.const 0))
          (i32.store16 (i32.const 296) (i32.and (i32.shr_u (local.get $c) (i32.const 8)) (i32.const 1)))
          (drop (call $poll_oneoff (i32.const 256) (i32.const 512) (i32.const 1) (i32.const 768))))
        (block $call
          (br_if $call (i32.ne (local.get $op) (i32.const 26)))
          (drop (call $fd_write (i32.and (local.get $c) (i32.const 3)) (local.get $a)
            (i32.and (i32.wrap_i64 (local.get $b)) (i32.const 7)) (i32.wrap_i64 (local.get $d)))))
        (block $call
          (br_if $call (i32.ne (local.get $op) (i32.const 27)))
          (drop (call $environ_sizes_get (local.get $a) (local.get $c)))
          (drop (call $environ_get (local.get $a) (local.get $c))))
        (block $call
          (br_if $call (i32.ne (local.get $op) (i32.const 28)))
          (drop (call $clock_time_get (i32.and (local.get $c) (i32.const 3)) (local.get $b) (local.get $a)))
          (drop (call $random_get (local.get $a) (i32.and (i32.wrap_i64 (local.get $b)) (i32.const 0xffff)))))
        (block $call
          (br_if $call (i32.ne (local.get $op) (i32.const 29)))
          (call $proc_exit (i32.and (local.get $c) (i32.const 1))))
        (br $next)))))
