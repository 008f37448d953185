"""Writes a TF2 object-based checkpoint that holds only the planned weights, at the model's paths.

The checkpoint mirrors only the part of the model's object graph that leads
to the planned weights, so `tf.train.Checkpoint(model=fresh_model).read(...)`
restores them into a fresh model of the same structure. It is written the
way `tf.train.Checkpoint.write` writes it (the same keys, object graph and
tensor bundle), but streamed: each weight goes to the file as soon as it is
assigned, from the variable's own buffer, and the files' digests come from
the bytes on their way out (see `migrate.output.bundle`).

Example:

    children = mirror(object_paths, variables_by_path)
    with CheckpointStream(staging, children) as stream:
        for assignment in plan.assignments:
            ...  # assign the weights
            stream.write([variables_by_path[path] for path in assignment.targets])
    stream.digests  # {"ckpt.index": FileDigest(...), ...}
"""


from migrate import files
from migrate.errors import OutputError
from migrate.output import bundle
from migrate.output import direct_read
from migrate.source.state_file import STATE_FILE_NAME

CHECKPOINT_NAME = "ckpt"
ROOT_NAME = "model"
# The key of the serialized object graph (`tensorflow.python.trackable.base.OBJECT_GRAPH_PROTO_KEY`).
OBJECT_GRAPH_KEY = "_CHECKPOINTABLE_OBJECT_GRAPH"


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


class CheckpointStream:
    """Writes the variables of `mirror(...)`'s object graph into `directory` as they are given.

    On entry the checkpoint's keys and object graph are taken from
    TensorFlow's own checkpoint machinery (no values are read then); `write`
    queues variables' current values; a normal exit checks that every
    variable was written, adds the object graph, finishes the bundle and
    writes the `checkpoint` state file, which lets
    `tf.train.latest_checkpoint(directory)` find the checkpoint (its path is
    relative, so the directory stays valid when renamed or copied).

    Attributes:
        prefix: the checkpoint prefix written.
        digests: after the block, `{file name: bundle.FileDigest}` of the
            bundle's files.
    """

    def __init__(self, directory, root_children):
        self.prefix = files.join(directory, CHECKPOINT_NAME)
        self._directory = directory
        self._root_children = root_children
        self._keys = None
        self._object_graph = None
        self._writer = bundle.BundleWriter(self.prefix)
        self.digests = None

    def __enter__(self):
        self._keys, self._object_graph = keys_and_object_graph(self._root_children)
        self._writer.__enter__()
        return self

    def write(self, variables):
        """Queues the current values of `variables` (each written once); returns at once.

        A variable must not be assigned again until the block ends: its
        buffer is written as it is, without a copy.
        """
        for variable in variables:
            self._writer.add(self._pop_key(variable), direct_read.variable_value(variable))

    def copy(self, variable, stored, *, inspect=None):
        """Queues `variable`'s value as the bytes a legacy checkpoint stores (see
        `bundle.BundleWriter.add_stored`), without assigning it; returns once they are read.

        Args:
            variable: the mirrored weight the bytes are for (its shape and dtype are recorded).
            stored: a `migrate.source.bundle_index.StoredTensor` of as many bytes.
            inspect: called with each chunk of the values, as a NumPy array.
        """
        key = self._pop_key(variable)
        self._writer.add_stored(key, direct_read.numpy_dtype(variable),
                                [int(size) for size in variable.shape], stored,
                                inspect=inspect)

    def _pop_key(self, variable):
        key = self._keys.pop(id(variable), None)
        if key is None:
            raise OutputError(
                f"Variable {getattr(variable, 'path', variable.name)!r} is not in the "
                f"checkpoint being written, or was written twice. Expected each mirrored "
                f"weight once. Received: name={variable.name!r}")
        return key

    def __exit__(self, kind, error, trace):
        if kind is None and self._keys:
            unwritten = sorted(self._keys.values())
            error = OutputError(
                f"{len(unwritten)} weight(s) of the checkpoint were never written: "
                f"{', '.join(unwritten[:5])}. Expected every planned weight to be assigned. "
                f"Received: unwritten={len(unwritten)}")
            self._writer.__exit__(type(error), error, None)
            raise error
        if kind is None:
            self._writer.add_string(OBJECT_GRAPH_KEY, self._object_graph)
        self._writer.__exit__(kind, error, trace)
        if kind is None:
            self.digests = self._writer.digests
            write_state_file(self._directory)
        return False


def write_state_file(directory):
    """Writes the `checkpoint` state file naming the checkpoint by a relative path, which lets
    `tf.train.latest_checkpoint(directory)` find it wherever the directory is moved."""
    files.write_bytes(files.join(directory, STATE_FILE_NAME),
                      f'model_checkpoint_path: "{CHECKPOINT_NAME}"\n'
                      f'all_model_checkpoint_paths: "{CHECKPOINT_NAME}"\n'.encode())


def keys_and_object_graph(root_children):
    """Returns `({id(variable): checkpoint key}, serialized object graph)` for the root's children.

    They come from the same step `tf.train.Checkpoint.write` takes
    (`_gather_serialized_tensors`), so the keys and object graph are exactly
    what TensorFlow would write; the values it offers are not read.
    """
    import tensorflow as tf

    # The saver holds its root weakly: the root must outlive the call.
    root = tf.train.Checkpoint(**root_children)
    serialized, _, registered_savers, _ = root._saver._gather_serialized_tensors(None)
    if registered_savers:
        raise OutputError(f"The checkpoint holds objects with registered savers, which this "
                          f"writer does not write. Expected plain variables. "
                          f"Received: registered_savers={sorted(registered_savers)}")
    keys = {}
    object_graph = None
    for trackable, tensors in serialized.items():
        if trackable is None:
            object_graph = tensors.pop(OBJECT_GRAPH_KEY).numpy()
        if not tensors:
            continue  # Containers hold no tensors of their own.
        if len(tensors) != 1 or not hasattr(trackable, "handle"):
            raise OutputError(
                f"The checkpoint would hold {sorted(tensors)} for one object, which is not a "
                f"plain variable. Expected one value per variable. "
                f"Received: object={type(trackable).__name__}")
        keys[id(trackable)] = next(iter(tensors))
    return keys, object_graph
