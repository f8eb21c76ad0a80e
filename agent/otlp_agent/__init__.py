"""otlp_agent: the data plane. Receives OTLP, batches it as serialized protobuf, and exports it."""
