"""The OTLP wire format: the three signals, protobuf bytes walked without parsing, OTLP/JSON, compression
codecs, and the status codes the OTLP specification gives each outcome."""
