"""The operator's edge: the command line and everything kopf calls (handlers, webhooks, settings).

Only this package imports kopf; it turns kopf's events into calls to `reconcile` and `injection`.
"""
