"""Development tools that ship in no image: `make generate` (CRD, chart copy, configuration reference) and
`make run` (the demo)."""
