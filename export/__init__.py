"""siamese-edge export: Keras -> ONNX, FP16, TensorRT, bundle."""

from train import quiet

quiet.install()  # TensorFlow's start-up chatter stays off the terminal (SIAMESE_EDGE_VERBOSE=1 brings it back)
