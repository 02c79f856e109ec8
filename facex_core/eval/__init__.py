"""Evaluation: the paper's metrics (and, to come, its protocols on a user's data)."""
