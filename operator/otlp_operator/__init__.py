"""otlp_operator: the control plane. Turns OTLPPipeline resources into running agents."""
