"""bench: the load generator, counting sink, peer comparison with rotel, and the report (`make bench`)."""
