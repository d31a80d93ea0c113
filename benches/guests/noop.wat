;; Does nothing: what remains is the cost of getting an instance, calling
;; it and giving it back.
(module
  (memory (export "memory") 1)
  (func (export "handle")))
