"""The `checkpoint` state file TF1's `Saver` keeps beside its checkpoints, read without TensorFlow."""

import functools
import os

from migrate import files
from migrate.errors import reason

STATE_FILE_NAME = "checkpoint"


def newest_in_state_file(directory):
    """Returns the newest checkpoint that `directory`'s `checkpoint` state file names, or "".

    Read as `tf.train.get_checkpoint_state` reads it, without importing
    TensorFlow: the file is the text format of a CheckpointState proto,
    parsed by protobuf's own `text_format` (quoting, escapes and comments as
    TensorFlow reads them), and a relative path is taken relative to
    `directory`.

    Args:
        directory: the directory holding the state file.

    Returns:
        Its `model_checkpoint_path`, joined to `directory` when relative; ""
        when the file names none.

    Raises:
        ValueError: the file cannot be read, is not UTF-8 text, or is not a
            text CheckpointState; the message says why.

    Example:

        newest_in_state_file("train/run1")  # 'train/run1/model.ckpt-3'
    """
    from google.protobuf import text_format

    state = _checkpoint_state_class()()
    try:
        text_format.Merge(files.read_bytes(files.join(directory, STATE_FILE_NAME)).decode(), state)
    except Exception as error:  # OSError, tf.errors.OpError, UnicodeDecodeError, ParseError.
        raise ValueError(reason(error)) from None
    path = state.model_checkpoint_path
    if path and not (os.path.isabs(path) or files.is_url(path)):
        path = files.join(directory, path)
    return path


@functools.cache
def _checkpoint_state_class():
    """Returns a message class for TensorFlow's CheckpointState proto, built without TensorFlow.

    Its fields are those of tensorflow/python/training/checkpoint_state.proto.
    It lives in a descriptor pool of its own, so it never clashes with
    TensorFlow's class of the same name when both are loaded.
    """
    from google.protobuf import descriptor_pb2
    from google.protobuf import descriptor_pool
    from google.protobuf import message_factory

    field = descriptor_pb2.FieldDescriptorProto
    proto = descriptor_pb2.FileDescriptorProto(
        name="tf1_migrate/checkpoint_state.proto", package="tensorflow", syntax="proto3")
    message = proto.message_type.add(name="CheckpointState")
    for number, (name, kind, label) in enumerate((
            ("model_checkpoint_path", field.TYPE_STRING, field.LABEL_OPTIONAL),
            ("all_model_checkpoint_paths", field.TYPE_STRING, field.LABEL_REPEATED),
            ("all_model_checkpoint_timestamps", field.TYPE_DOUBLE, field.LABEL_REPEATED),
            ("last_preserved_timestamp", field.TYPE_DOUBLE, field.LABEL_OPTIONAL)), start=1):
        message.field.add(name=name, number=number, type=kind, label=label)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(proto)
    return message_factory.GetMessageClass(pool.FindMessageTypeByName("tensorflow.CheckpointState"))
