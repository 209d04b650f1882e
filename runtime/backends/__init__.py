"""Inference backends. Each embeds preprocessed NHWC batches and scores embedding pairs."""
