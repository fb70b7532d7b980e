"""The foreign test set: images drawn with OpenCV, by code that shares nothing with the training
generator (`scripts/datagen`, Pillow) but the class names. Used only to evaluate, never to
train or to pick a checkpoint (`python scripts/evaluate.py`)."""
