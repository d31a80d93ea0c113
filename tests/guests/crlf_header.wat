;; Tries to inject a header through a CR/LF in a header value.
(module
  (import "env" "response_set_header" (func $header (param i32 i64 i32 i64)))
  (import "env" "response_set_body" (func $body (param i32 i64)))
  (memory (export "memory") 1)
  (data (i32.const 0) "X-Test")
  (data (i32.const 16) "ok\r\nInjected: yes")
  (func (export "handle")
    (call $header (i32.const 0) (i64.const 6) (i32.const 16) (i64.const 17))
    (call $body (i32.const 0) (i64.const 6))))
