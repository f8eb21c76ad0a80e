"""The senders every batch passes on its way out: circuit breaker, retry with backoff, per-attempt timeout."""
