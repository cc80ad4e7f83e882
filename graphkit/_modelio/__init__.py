"""Model I/O: loading ONNX files with their checks, saving them, and the ModelProto bridge.

Kept free of imports so that importing one module here loads only what it needs.
"""
