"""What set_opset adds to onnx's version converter.

Function expansion, adapters, and validity at the target opset.
"""
