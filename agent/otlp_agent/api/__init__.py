"""The OTLPPipeline API, shared by the agent and the operator: the spec models (`spec`), their cross-field
rules (`rules`), loading a pipeline from YAML (`loader`), units and problems with field paths.

Nothing here imports the data path: the operator image installs this package without grpcio or zstandard.
"""
