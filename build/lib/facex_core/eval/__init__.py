"""Evaluation: the paper's metrics, its protocols (Tables 1-3) on a user's pairs, and the FID network."""
