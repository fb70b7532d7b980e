"""Seeded, deterministic synthetic data: scenes of geometric primitives drawn with PIL, labelled
with oriented boxes (Ultralytics OBB format) and a scene class."""
