"""siamese-edge export: Keras -> ONNX, FP16, TensorRT, bundle."""
