"""Transports: one export attempt over gRPC, HTTP (protobuf or JSON), or to the debug output; failover
over several endpoints."""
