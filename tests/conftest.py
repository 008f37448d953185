"""Test set-up shared by every test module."""

import os

# The legacy TF1 graphs (tf-slim, rnn_cell) need Keras 2 behind `tf.keras`,
# which TensorFlow reads once at import; `import keras` stays Keras 3.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
