"""Facial Omni-Representation Decomposing: identity, regions, motion, gaze, texture and
lighting, each from its published extractor."""
