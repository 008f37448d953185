"""Rewrites a legacy checkpoint in TensorFlow's V1 format, as tf-slim's published ones are."""

import glob
import os

from legacy_graphs import compat

WRITE_VERSIONS = ("V2", "V1")


def rewrite_as_v1(prefix, *, shards=0):
    """Replaces the V2 checkpoint at `prefix` by the same tensors in the V1 format.

    The tensors are written by `tf.compat.v1.train.Saver(write_version=V1)`:
    one file named `prefix` (shards=0), or `prefix-0000K-of-NNNNN` with
    variables spread over `shards` devices. The `.index` and `.data-*` files
    are removed; the `.meta` and the `checkpoint` state file stay (the state
    file then names the V1 checkpoint).

    Args:
        prefix: a V2 checkpoint prefix, e.g. `out/model.ckpt-3`.
        shards: 0 for a single file, else the number of shards.

    Returns:
        `prefix`.

    Example:

        rewrite_as_v1(legacy_graphs.small_convnet.write_checkpoint("out"), shards=2)
    """
    tf = compat.import_tf_v1()
    reader = tf.train.NewCheckpointReader(prefix)
    dtypes = reader.get_variable_to_dtype_map()
    shapes = reader.get_variable_to_shape_map()
    devices = max(shards, 1)
    graph = tf.Graph()
    with graph.as_default():
        var_list = {}
        for index, name in enumerate(sorted(shapes)):
            with tf.device(f"/cpu:{index % devices}"):
                var_list[name] = tf.get_variable(
                    f"v1_rewrite/{index}", shapes[name], dtypes[name].base_dtype,
                    initializer=tf.zeros_initializer(), use_resource=False)
        saver = tf.train.Saver(var_list, write_version=tf.train.SaverDef.V1,
                               sharded=shards > 0)
        config = tf.ConfigProto(device_count={"CPU": devices})
        with tf.Session(graph=graph, config=config) as session:
            for name, variable in var_list.items():
                variable.load(reader.get_tensor(name), session)
            for path in [prefix + ".index", *glob.glob(prefix + ".data-*")]:
                os.remove(path)
            saver.save(session, prefix, write_meta_graph=False)
    return prefix
