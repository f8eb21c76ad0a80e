"""One exporter lane per configured exporter (`lane`): batchers -> queue -> consumers -> senders (circuit,
retry, timeout) -> transport. Each lane has its own queue, so a slow backend never stalls the others.

`memory` (the limiter every lane and the intake share) and `delivery` (when a waiting client is answered)
live here because the lane is where held bytes and acknowledgements are settled.
"""
