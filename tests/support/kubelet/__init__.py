"""A test kubelet: runs the pods an API server (the emulator) holds as real processes. See README.md."""

from tests.support.kubelet.kubelet import Kubelet

__all__ = ["Kubelet"]
