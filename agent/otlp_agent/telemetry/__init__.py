"""The agent's own telemetry: Prometheus metrics and rate-limited JSON logs."""
