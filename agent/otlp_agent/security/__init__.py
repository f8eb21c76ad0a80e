"""TLS, bearer tokens and secret headers, from the Secret files the operator mounts."""
