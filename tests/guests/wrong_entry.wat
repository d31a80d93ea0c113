;; Its `handle` takes a parameter, which an entry function may not.
(module
  (memory (export "memory") 1)
  (func (export "handle") (param i32)))
