"""TF1 graph-mode model definitions that write legacy checkpoints.

Each model lives in its own module `legacy_graphs/<name>.py` and provides:

        NAME            the model's name (same as the module name)
        INPUT_TENSOR    name of the placeholder the verifier feeds, e.g. "inputs:0"
        OUTPUT_TENSOR   name of the tensor the verifier compares, e.g. "logits:0"
        INPUT_SHAPE     input shape without the batch dimension
        INPUT_DTYPE     "float32" or "int32"
        INPUT_MAX       for integer inputs, values are drawn from [0, INPUT_MAX); else None
        define_graph()  builds the inference graph in the current default graph and
                                        returns (inputs, outputs); used when a checkpoint has no .meta
        write_checkpoint(output_dir, *, steps, seed) -> checkpoint prefix
                                        trains a few steps in graph mode and saves with a .meta

The builders import TensorFlow through `legacy_graphs.compat`, which needs
`TF_USE_LEGACY_KERAS=1` before TensorFlow is imported: run them in their own
process with `python -m legacy_graphs NAME --output_dir=DIR`, or through
`build_in_subprocess`.
"""

import importlib
import os
import subprocess
import sys

BUILDER_NAMES = (
    "small_convnet",
        "resnet_v1_50",
        "vgg_16",
        "lstm_language_model",
        "gru_classifier",
        "bilstm_tagger",
        "bert_encoder",
        "inception_v3",
        "two_branch_convnet",
        "google_bert",
        "gpt2",
        "mobilenet_v2",
)


def load_builder(name):
    """Returns the builder module called `name`.

    Raises:
        ValueError: `name` is not one of `BUILDER_NAMES`.
    """
    if name not in BUILDER_NAMES:
        raise ValueError(
                f"Unknown legacy graph builder. Expected one of {', '.join(BUILDER_NAMES)}. "
                f"Received: name={name!r}")
    return importlib.import_module(f"legacy_graphs.{name}")


def preset(builder_name, presets, config):
    """Returns `presets[config]`, the value of a builder's size preset.

    Raises:
        ValueError: `config` names no preset; the message lists them.
    """
    if config not in presets:
        raise ValueError(
            f"Unknown {builder_name} config. Expected one of {', '.join(presets)}. "
            f"Received: config={config!r}")
    return presets[config]


def build_in_subprocess(name, output_dir, *, steps=None, seed=0, extra_flags=()):
    """Writes a legacy checkpoint in a fresh process and returns its prefix.

    A separate process keeps `TF_USE_LEGACY_KERAS=1` (which turns `tf.keras`
    into Keras 2) away from the caller's TensorFlow.
    """
    arguments = [name, f"--output_dir={output_dir}", f"--seed={seed}", *extra_flags]
    if steps is not None:
        arguments.append(f"--steps={steps}")
    return _run_module("legacy_graphs", arguments, f"Building legacy checkpoint {name!r}")


def build_exports_in_subprocess(small_convnet_prefix, gru_classifier_prefix, output_dir):
    """Writes the SavedModels, TF-Hub module and frozen graphs of `legacy_graphs.exports`.

    From checkpoints of `small_convnet` and `gru_classifier`, in a fresh
    process (as `build_in_subprocess`); returns `output_dir`.
    """
    return _run_module("legacy_graphs.exports", [
        f"--small_convnet={small_convnet_prefix}", f"--gru_classifier={gru_classifier_prefix}",
        f"--output_dir={output_dir}"], "Writing the exports")


def _run_module(module, arguments, what):
    """Runs `python -m MODULE ARGUMENTS` with Keras 2 behind tf.keras; returns its last line."""
    environment = dict(os.environ, TF_USE_LEGACY_KERAS="1", TF_CPP_MIN_LOG_LEVEL="2")
    completed = subprocess.run([sys.executable, "-m", module, *arguments], env=environment,
                               capture_output=True, text=True, check=False)
    if completed.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{completed.stderr[-4000:]}")
    return completed.stdout.strip().splitlines()[-1]
