"""gpufleet: a control plane for GPU capacity spread across many clouds."""

__version__ = "0.1.0"
