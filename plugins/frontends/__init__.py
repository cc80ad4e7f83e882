"""The built-in frontends: ONNX files, TensorFlow SavedModels, PyTorch checkpoints."""
