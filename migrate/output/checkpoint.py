"""Writes a TF2 object-based checkpoint that holds only the planned weights, at the model's paths.

The checkpoint shares the model's own variables (no second copy of the
weights is held) and mirrors only the part of the model's object graph that
leads to them, so `tf.train.Checkpoint(model=fresh_model).read(...)` restores
them into a fresh model of the same structure.
"""

from migrate import files

CHECKPOINT_NAME = "ckpt"
STATE_FILE_NAME = "checkpoint"
ROOT_NAME = "model"


def mirror(object_paths_by_target, variables_by_path, *, alias_model_children=False):
    """Builds trackables that hold only the given variables at their model paths.

    Args:
        object_paths_by_target: `migrate.planning.target.reachable_paths(...)`:
            each weight's object path below the model.
        variables_by_path: the model's variables by target path.
        alias_model_children: also put the model's children at the root, so
            a tf_keras (Keras 2) model can `load_weights` the checkpoint (its
            root is the model itself) while `tf.train.Checkpoint(model=...)`
            still finds them under `model`. Each variable is stored once.

    Returns:
        A dict of root child name to trackable, for `tf.train.Checkpoint(**children)`.
    """
    import tensorflow as tf

    AutoTrackable = tf.__internal__.tracking.AutoTrackable
    root = AutoTrackable()
    nodes = {(): root}
    for target, below_model in object_paths_by_target.items():
        object_path = (ROOT_NAME, *below_model)
        for depth in range(1, len(object_path)):
            key = object_path[:depth]
            if key not in nodes:
                nodes[key] = AutoTrackable()
                setattr(nodes[key[:-1]], key[-1], nodes[key])
        setattr(nodes[object_path[:-1]], object_path[-1], variables_by_path[target])
    children = {ROOT_NAME: nodes[(ROOT_NAME,)]}
    if alias_model_children:
        children.update(nodes[(ROOT_NAME,)]._trackable_children())
    return children


def write(directory, root_children):
    """Writes the checkpoint and its `checkpoint` state file into `directory`.

    The state file lets `tf.train.latest_checkpoint(directory)` find the
    checkpoint; its path is relative, so the directory stays valid when it
    is renamed or copied.

    Returns:
        The checkpoint prefix written.
    """
    import tensorflow as tf

    prefix = tf.train.Checkpoint(**root_children).write(files.join(directory, CHECKPOINT_NAME))
    files.write_bytes(files.join(directory, STATE_FILE_NAME),
                      f'model_checkpoint_path: "{CHECKPOINT_NAME}"\n'
                      f'all_model_checkpoint_paths: "{CHECKPOINT_NAME}"\n'.encode())
    return prefix
