"""Exporters: one module per format (nir, onnx, netx, c)."""
