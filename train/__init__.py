"""siamese-edge training side: architectures, datasets, pair sampling, losses, training, evaluation."""
