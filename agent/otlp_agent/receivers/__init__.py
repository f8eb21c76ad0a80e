"""Receivers: OTLP/gRPC and OTLP/HTTP front doors. They validate and decode, then hand bytes to a
`consumer.Consumer` (the pipeline's intake)."""
