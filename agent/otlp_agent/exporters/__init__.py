"""Exporters: a chain of small senders (queue -> retry -> timeout -> transport) per configured exporter."""
