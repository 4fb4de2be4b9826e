"""Models: the network definition, model-file formats (ONNX, PyTorch, safetensors), the
PyTorch builder, the learner and the zoo of reference networks."""
