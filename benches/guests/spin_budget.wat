;; The noisy neighbour: computes until its fuel runs out (a 503), yielding
;; to the shard at every fuel_yield_interval on the way.
(module
  (func (export "handle")
    (loop $forever (br $forever))))
