;; Spins forever: only fuel or the timeout stops it.
(module
  (func (export "handle")
    (loop $forever (br $forever))))
