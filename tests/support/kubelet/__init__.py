"""A test kubelet: runs the pods an API server (the emulator) holds as real processes. See README.md."""

from tests.support.kubelet.kubelet import THIS_PROJECT, Kubelet

__all__ = ["THIS_PROJECT", "Kubelet"]
