"""What set_opset adds to onnx's version converter: function expansion, adapters, validity at the target."""
