"""A recording, fault-injecting OTLP backend (gRPC + HTTP on loopback) for integration and fault tests.

`OtlpBackend` (backend.py) is the entry point; `Fault` (faults.py) says what to do to a request;
`ReceivedRequest` (recorder.py) is what was recorded. wire.py holds the pure OTLP encoding helpers.
"""

from tests.support.otlp_backend.backend import OtlpBackend
from tests.support.otlp_backend.faults import Fault
from tests.support.otlp_backend.recorder import ReceivedRequest
from tests.support.otlp_backend.wire import any_value, attributes

__all__ = ["Fault", "OtlpBackend", "ReceivedRequest", "any_value", "attributes"]
