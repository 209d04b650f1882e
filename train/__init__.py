"""siamese-edge training side: architectures, datasets, pair sampling, losses, training, evaluation."""

from train import quiet

quiet.install()  # TensorFlow's start-up chatter stays off the terminal (SIAMESE_EDGE_VERBOSE=1 brings it back)
