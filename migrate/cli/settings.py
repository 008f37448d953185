"""From the parsed flags to the library's objects: options, verification settings, the checkpoint.

Also where the command line imports TensorFlow, quietly: its start-up chatter
would otherwise break the promise that an error is one line.
"""

import contextlib
import os
import sys

from migrate import errors
from migrate import pipeline
from migrate import verify_settings
from migrate import zoo
from migrate.cli.command import UsageError
from migrate.cli.command import checkpoint_has_signature
from migrate.cli.flags import FLAGS
from migrate.cli.flags import GRAPH_INPUT_OPTIONS
from migrate.options import ConversionOptions
from migrate.verification import parity


@contextlib.contextmanager
def tensorflow_imported_quietly():
    """Runs the body, then imports TensorFlow; its start-up chatter hidden unless --verbose.

    Standard error is hidden for the body too, so the body must print nothing:
    opening a checkpoint there starts its read-ahead (and its TensorFlow-free
    `.index` checks) before the 3 s import instead of after it.
    """
    if FLAGS.verbose or "tensorflow" in sys.modules:
        yield
        import tensorflow  # noqa: F401
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # The C++ start-up lines ignore TF_CPP_MIN_LOG_LEVEL, so standard error is
    # silenced at the file-descriptor level for the import only. Listing the
    # devices there too: on a machine without a GPU, the first use of the
    # devices otherwise logs a failed `cuInit` in the middle of the command.
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
            import tensorflow as tf
            tf.config.list_physical_devices()
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
    tf.get_logger().setLevel("ERROR")
    from absl import logging
    logging.set_verbosity(logging.WARNING)


def import_tensorflow_quietly():
    """Imports TensorFlow with its start-up chatter hidden, unless --verbose."""
    with tensorflow_imported_quietly():
        pass


def zoo_entry():
    """Returns the --zoo entry, or None; its model module imports Keras, so TensorFlow quietly."""
    if FLAGS.zoo is None:
        return None
    import_tensorflow_quietly()
    return zoo.get(FLAGS.zoo)


def check_zoo_name():
    """Lets the library refuse an unknown zoo name before anything imports TensorFlow."""
    if FLAGS.zoo is not None and FLAGS.zoo not in zoo.available():
        try:
            zoo.get(FLAGS.zoo)  # The library's message names the closest entries.
        except ValueError as error:  # ArgumentError, or a plain ValueError before the sweep.
            raise UsageError(str(error)) from None


def table_and_model():
    """Returns the table and model flags, each filled from --zoo when not given.

    Without importing the entry's model module: a batch hands the factory's
    name to its workers and imports neither Keras nor TensorFlow itself.
    """
    if FLAGS.zoo is None:
        return FLAGS.table, FLAGS.model
    return (FLAGS.table or zoo.table_path(FLAGS.zoo),
            FLAGS.model or zoo.model_factory(FLAGS.zoo))


def conversion_options():
    """Returns the one `ConversionOptions` of this command line, built from the flags."""
    return ConversionOptions(keep=FLAGS.keep, ema=FLAGS.ema,
                             allow_nonfinite=FLAGS.allow_nonfinite, use_meta=FLAGS.use_meta,
                             builder=FLAGS.builder, exports=tuple(FLAGS.export),
                             verify=verify_settings_of_flags() if FLAGS.verify else None,
                             tags=FLAGS.tags, signature=FLAGS.signature)


def verify_settings_of_flags():
    """Returns the `VerifySettings` of the input flags, on top of the zoo entry's defaults."""
    given = {}
    if FLAGS.input_tensor is not None:
        given["input_tensor"] = FLAGS.input_tensor
    if FLAGS.output_tensor is not None:
        given["output_tensor"] = FLAGS.output_tensor
    if FLAGS.input_shape is not None:
        given["input_shapes"] = verify_settings.parse_input_shapes(FLAGS.input_shape)
    if FLAGS.input_max is not None:
        given["input_max"] = verify_settings.parse_input_max(FLAGS.input_max)
    if FLAGS.batch_axis is not None:
        given["batch_axes"] = verify_settings.parse_batch_axes(FLAGS.batch_axis)
    if FLAGS.feed:
        given["feeds"] = dict(verify_settings.parse_feed(text) for text in FLAGS.feed)
    if FLAGS.keras_feed:
        given["keras_feeds"] = dict(verify_settings.parse_feed(text)
                                    for text in FLAGS.keras_feed)
    if FLAGS.inputs is not None:
        given["inputs"] = FLAGS.inputs
    if FLAGS.tolerance is not None:
        given["tolerance"] = FLAGS.tolerance
    defaults = {}
    entry = zoo_entry()
    if entry is not None:
        defaults = dict(entry.verify)
        if checkpoint_has_signature():
            # The entry's tensors are its builder's; a SavedModel's signature names its own.
            defaults.pop("input_tensor", None)
            defaults.pop("output_tensor", None)
        # The entry's inputs describe its own placeholders: flags naming other
        # inputs replace them as a whole.
        if "input_tensor" in given or "input_shapes" in given:
            defaults.pop("input_shape", None)
        if "input_tensor" in given:
            defaults.pop("input_max", None)
            # The entry's constants stay for the Keras inputs the flags do not pair.
            paired = {keras for keras, _ in verify_settings.parse_pairs(
                given["input_tensor"], "input_tensor") or ()}
            defaults["keras_feeds"] = {name: value for name, value
                                       in defaults.get("keras_feeds", {}).items()
                                       if name not in paired}
    return parity.settings_from_arguments(
        **{**defaults, **given}, batch_size=FLAGS.batch_size, seed=FLAGS.seed,
        # A plot is of the layers: --plot compares them even when the outputs agree.
        layers=FLAGS.layers or FLAGS.plot is not None, keep_failed=FLAGS.keep_failed,
        legacy_dropout=FLAGS.legacy_dropout)


def open_checkpoint(options, *, read_ahead=False):
    return pipeline.open_checkpoint(FLAGS.checkpoint, options, read_ahead=read_ahead)


@contextlib.contextmanager
def graph_misfits_as_input_errors():
    """Turns verification arguments that the legacy graph refuses into input errors (exit 1).

    The verification flags were parsed before TensorFlow was imported; whether
    they fit the graph (a placeholder left without a feed, a tensor it does not
    have) shows only once it is read, as a table's unmapped variables do, so
    that is an error in the input, with the flag's hint, not a usage error.
    """
    try:
        yield
    except errors.ArgumentError as error:
        if error.option not in GRAPH_INPUT_OPTIONS:
            raise
        raise errors.MigrateError(str(error), option=error.option) from error
