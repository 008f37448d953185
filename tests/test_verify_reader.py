"""The streaming reader, proven on every zoo entry against the graph's own Saver in graph mode."""

import collections

import numpy as np
import pytest

from migrate import zoo

# vgg_16's full fc6 kernel makes a 1 GB checkpoint; its tiny config has the same layout.
_BUILD_FLAGS = {"vgg_16": {"extra_flags": ("--config=tiny",)}}
_SLOW = {"resnet_v1_50", "vgg_16"}


def _saver_restored(prefix):
    """Restores `Saver(var_list=trainable_variables())` in the imported graph.

    Returns:
        `{checkpoint key: array}`, partitioned variables joined from their parts.
    """
    import verify_graphs
    from migrate.source.meta_graph import checkpoint_key

    tf = verify_graphs.tf_v1()
    graph = tf.Graph()
    with graph.as_default():
        tf.train.import_meta_graph(prefix + ".meta", clear_devices=True)
        trainable = tf.trainable_variables()
        saver = tf.train.Saver(var_list=trainable)
        with tf.Session(graph=graph) as session:
            saver.restore(session, prefix)
            values = session.run(trainable)
    parts = collections.defaultdict(list)
    for variable, value in zip(trainable, values):
        slice_info = getattr(variable, "_save_slice_info", None)
        offset = tuple(slice_info.var_offset) if slice_info else ()
        parts[checkpoint_key(variable)].append((offset, value))
    restored = {}
    for key, pieces in parts.items():
        pieces.sort(key=lambda piece: piece[0])
        axis = next((index for index, size in enumerate(pieces[-1][0]) if size), 0)
        restored[key] = (pieces[0][1] if len(pieces) == 1
                         else np.concatenate([value for _, value in pieces], axis=axis))
    return restored


@pytest.mark.parametrize("name", [
    pytest.param(name, marks=pytest.mark.slow) if name in _SLOW else name
    for name in zoo.ZOO_NAMES])
def test_streaming_reader_equals_what_the_graphs_saver_restores(name, legacy_checkpoint):
    import migrate

    prefix = legacy_checkpoint(name, **_BUILD_FLAGS.get(name, {}))
    expected = _saver_restored(prefix)
    checkpoint = migrate.LegacyCheckpoint.open(prefix)
    trainable = {key for key, variable in checkpoint.variables.items()
                 if variable.role is migrate.Role.TRAINABLE}
    assert trainable == set(expected)
    for key in sorted(trainable):
        value = checkpoint.read(key)
        assert value.dtype == expected[key].dtype and value.shape == expected[key].shape, key
        np.testing.assert_array_equal(value, expected[key], err_msg=key)
