"""Targets: one module per runtime (cpu, onnxruntime, lava)."""
