"""Between receivers and exporters: a request is enriched, routed and admitted (`intake`), then each
exporter lane gets its part."""
