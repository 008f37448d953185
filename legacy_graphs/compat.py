"""Imports TensorFlow the way TF1 graph-mode model code needs it on TF 2.21.

`tf.compat.v1.layers`, `tf.compat.v1.nn.rnn_cell` and tf-slim's layers only
work when `TF_USE_LEGACY_KERAS=1` is set before TensorFlow is first imported
(they are built on Keras 2, which `tf-keras` provides). tf-slim 1.1.0 also
imports `tf_keras.legacy_tf_layers.*`, which tf-keras 2.21 ships under
`tf_keras.src.legacy_tf_layers`; aliasing the modules makes `tf_slim.nets`
build. `import keras` stays Keras 3 either way.
"""

import contextlib
import importlib
import os
import sys

_LEGACY_TF_LAYERS = ("base", "convolutional", "core", "normalization", "pooling",
                                          "variable_scope_shim")


def import_tf_v1():
    """Returns `tensorflow.compat.v1` ready for graph-mode TF1 model code.

    Raises:
        RuntimeError: TensorFlow was already imported without the legacy switch,
            so `rnn_cell` and `tf.compat.v1.layers` would refuse to build.
    """
    if "tensorflow" in sys.modules and os.environ.get("TF_USE_LEGACY_KERAS") != "1":
        raise RuntimeError(
                "legacy_graphs needs TF_USE_LEGACY_KERAS=1 set before TensorFlow is "
                "imported; run the builder in its own process (python -m legacy_graphs).")
    os.environ["TF_USE_LEGACY_KERAS"] = "1"
    import tensorflow as tf  # pylint: disable=g-import-not-at-top
    return tf.compat.v1


def import_tf_slim():
    """Returns the `tf_slim` module with tf-keras 2.21's layer modules aliased."""
    import_tf_v1()
    for name in _LEGACY_TF_LAYERS:
        alias = f"tf_keras.legacy_tf_layers.{name}"
        if alias not in sys.modules:
            sys.modules[alias] = importlib.import_module(f"tf_keras.src.legacy_tf_layers.{name}")
    if "tf_keras.legacy_tf_layers" not in sys.modules:
        sys.modules["tf_keras.legacy_tf_layers"] = importlib.import_module(
                "tf_keras.src.legacy_tf_layers")
    import tf_slim  # pylint: disable=g-import-not-at-top
    return tf_slim


@contextlib.contextmanager
def tf1_control_flow():
    """Builds graphs as TF 1.x did: v1 control flow (Switch/Merge conds, loops of Enter/Exit
    frames) and reference variables; what was enabled before is enabled again after."""
    tf = import_tf_v1()
    control_flow_v2 = tf.control_flow_v2_enabled()
    resource_variables = tf.resource_variables_enabled()
    tf.disable_control_flow_v2()
    tf.disable_resource_variables()
    try:
        yield
    finally:
        if control_flow_v2:
            tf.enable_control_flow_v2()
        if resource_variables:
            tf.enable_resource_variables()
