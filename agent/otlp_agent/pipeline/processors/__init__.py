"""Processors: resource, filter, sampling and attributes, on requests kept as bytes (see `chain`)."""
