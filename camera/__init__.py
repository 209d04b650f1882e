"""siamese-edge camera: real-time verification on live streams."""
