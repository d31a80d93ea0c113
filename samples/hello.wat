;; The original project's "testfunc" sample, rewritten as text: two entry
;; points, `hello` and `bonjour`, picked by the route's `function`. Like the
;; original it imports its memory as `env.memory` (old toolchains did) and
;; sets its own Content-length, which the server replaces by the real one.
(module
  (import "env" "log" (func $log (param i32 i64)))
  (import "env" "response_set_status_line" (func $status (param i32 i32 i64)))
  (import "env" "response_set_header" (func $header (param i32 i64 i32 i64)))
  (import "env" "response_set_body" (func $body (param i32 i64)))
  (import "env" "memory" (memory 1))

  (data (i32.const 0) "Hello world with api!")
  (data (i32.const 32) "Ok")
  (data (i32.const 48) "Content-length")
  (data (i32.const 64) "23")
  (data (i32.const 68) "59")
  (data (i32.const 96) "Hello world from wasm!\n")
  (data (i32.const 128) "Bonjour tout le monde!")
  (data (i32.const 160) "Bonjour tout le monde depuis le monde merveilleux de WASM!\n")
  (data (i32.const 224) "Content-Type")
  (data (i32.const 240) "text/plain; charset=utf-8")

  (func $answer (param $body i32) (param $len i64) (param $len_text i32)
    (call $status (i32.const 200) (i32.const 32) (i64.const 2))
    (call $header (i32.const 224) (i64.const 12) (i32.const 240) (i64.const 25))
    (call $header (i32.const 48) (i64.const 14) (local.get $len_text) (i64.const 2))
    (call $body (local.get $body) (local.get $len)))

  (func (export "hello")
    (call $log (i32.const 0) (i64.const 21))
    (call $answer (i32.const 96) (i64.const 23) (i32.const 64)))

  (func (export "bonjour")
    (call $log (i32.const 128) (i64.const 22))
    (call $answer (i32.const 160) (i64.const 59) (i32.const 68))))
