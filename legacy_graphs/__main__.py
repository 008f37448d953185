"""Writes one legacy TF1 checkpoint: `python -m legacy_graphs NAME --output_dir=DIR`."""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

import legacy_graphs  # noqa: E402

_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Directory for the checkpoint files.")
_STEPS = flags.DEFINE_integer("steps", None, "Training steps; the builder's default if unset.")
_SEED = flags.DEFINE_integer("seed", 0, "Random seed for variables and training data.")
_CONFIG = flags.DEFINE_string(
    "config", None, "Size preset for builders that have several (e.g. tiny, base).")
_WRITE_VERSION = flags.DEFINE_enum(
    "write_version", "V2", ["V2", "V1"],
    "Checkpoint format: V2 (TF 2.x default) or V1 (as tf-slim's published checkpoints).")
_V1_SHARDS = flags.DEFINE_integer(
    "v1_shards", 0, "With --write_version=V1: 0 writes one file, N writes N shards.")
flags.mark_flag_as_required("output_dir")


def main(argv):
    if len(argv) != 2:
        raise app.UsageError(
            f"Expected exactly one builder name, one of {', '.join(legacy_graphs.BUILDER_NAMES)}.")
    builder = legacy_graphs.load_builder(argv[1])
    kwargs = {"seed": _SEED.value}
    if _STEPS.value is not None:
        kwargs["steps"] = _STEPS.value
    if _CONFIG.value is not None:
        kwargs["config"] = _CONFIG.value
    prefix = builder.write_checkpoint(_OUTPUT_DIR.value, **kwargs)
    if _WRITE_VERSION.value == "V1":
        from legacy_graphs import v1_format

        v1_format.rewrite_as_v1(prefix, shards=_V1_SHARDS.value)
    print(prefix)


if __name__ == "__main__":
    app.run(main)
