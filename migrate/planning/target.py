"""The target Keras model: built from a factory, its weights by path, what a checkpoint reaches."""

import collections
import dataclasses
import functools
import importlib
import inspect
import math
from typing import Any

import numpy as np

from migrate.errors import ModelError
from migrate.errors import reason


@dataclasses.dataclass(frozen=True)
class TargetWeight:
    """One weight of the target model.

    Attributes:
        path: Keras 3 `Variable.path` (for tf_keras models: the variable name
            without `:0`), e.g. `block1_conv1/kernel`.
        shape: the weight's shape.
        dtype: dtype name.
        trainable: whether it is a trainable weight.
    """

    path: str
    shape: tuple
    dtype: str
    trainable: bool

    @property
    def nbytes(self):
        return math.prod(self.shape) * np.dtype(self.dtype).itemsize


def load_factory(spec):
    """Imports `module:callable` and returns the callable.

    Only the named module is imported, and importing it runs its code.

    Args:
        spec: text such as `migrate.zoo.resnet_v1_50:build_model`.

    Returns:
        The callable.

    Raises:
        ModelError: the text is not `module:callable`, the import fails (the
            user's error is chained as the cause, for its traceback), or the
            module has no such callable.

    Example:

    >>> load_factory("os.path:join")("a", "b")
    'a/b'
    >>> load_factory("os.path")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    migrate.errors.ModelError: Expected a model factory as module:callable, ... model='os.path'
    """
    module_name, _, attribute = str(spec).partition(":")
    if not module_name or not attribute:
        raise ModelError(
            f"Expected a model factory as module:callable, e.g. "
            f"migrate.zoo.resnet_v1_50:build_model. Received: model={spec!r}")
    try:
        module = importlib.import_module(module_name)
    except Exception as error:  # The user's module: any error; the cause keeps its traceback.
        raise ModelError(
            f"Cannot import model module {module_name!r}: {reason(error)}. Expected an "
            f"importable module. Received: model={spec!r}") from error
    factory = getattr(module, attribute, None)
    if not callable(factory):
        raise ModelError(
            f"Module {module_name!r} has no callable {attribute!r}. Expected module:callable. "
            f"Received: model={spec!r}")
    return factory


def with_checkpoint(factory, checkpoint):
    """Returns `factory` with `checkpoint=` bound when it takes that parameter and one is given.

    Example:

    >>> with_checkpoint(lambda checkpoint=None: checkpoint, "train/model.ckpt-3")()
    'train/model.ckpt-3'
    >>> with_checkpoint(dict, "train/model.ckpt-3") is dict
    True
    """
    if checkpoint is None or not takes_checkpoint(factory):
        return factory
    return functools.partial(factory, checkpoint=checkpoint)


def takes_checkpoint(factory):
    """Whether a model factory has a `checkpoint` parameter (to size the model from it)."""
    try:
        return "checkpoint" in inspect.signature(factory).parameters
    except (TypeError, ValueError):  # Builtins without a signature take no checkpoint.
        return False


def build(factory, *, build_on=None):
    """Calls a model factory and checks that it returned a built Keras model.

    Args:
        factory: a callable without arguments that returns a built Keras model.
        build_on: for a model with no weights yet (a subclassed model never
            called), a callable that returns the arrays to build it by
            calling it on (one array for one input), or None.

    Returns:
        The model.

    Raises:
        ModelError: the factory failed (its error is chained as the cause, for
            its traceback) or returned something that is not a built model.

    Example:

        model = build(lambda: keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)]))
    """
    try:
        model = factory()
    except ModelError:  # A factory of ours (a zoo entry's) says what is wrong in one line.
        raise
    except Exception as error:  # The user's factory: any error; the cause keeps its traceback.
        raise ModelError(f"The model factory failed: {reason(error)}. Expected a factory "
                         f"that returns a built Keras model. Received: factory={_name(factory)}"
                         ) from error
    if not hasattr(model, "trainable_weights") or not hasattr(model, "non_trainable_weights"):
        raise ModelError(f"Expected the model factory to return a Keras model. "
                         f"Received: type={type(model).__name__}")
    if not model.weights and build_on is not None:
        arrays = build_on()
        try:
            model(arrays[0] if len(arrays) == 1 else arrays, training=False)
        except Exception as error:  # The user's model code: any error; the cause keeps it.
            shapes = ", ".join(f"{list(array.shape)} {array.dtype}" for array in arrays)
            raise ModelError(
                f"The model has no weights, and calling it on zeros shaped like the legacy "
                f"graph's inputs ({shapes}) failed: {reason(error)}. Expected a built model "
                f"(call it on an input in the factory) or input shapes it takes. Received: "
                f"model={model.name!r}", option="input_shape") from error
    if not model.weights:
        raise ModelError(f"The model has no weights. Expected a built model (call it on an "
                         f"input in the factory). Received: model={model.name!r}")
    return model


def load_model(model, *, checkpoint=None, build_on=None):
    """Returns a built Keras model from a model, a factory, or `module:callable` text.

    A factory with a `checkpoint` parameter is given `checkpoint` (the legacy
    checkpoint's prefix), to size the model from the variables' shapes (as
    the `google_bert` zoo entry does). A model with no weights yet is built
    by calling it on `build_on()`'s arrays, when given (see `build`).

    Example:

        model = load_model("my_models:build")
    """
    if isinstance(model, str):
        model = load_factory(model)
    if not is_model(model):
        return build(with_checkpoint(model, checkpoint), build_on=build_on)
    return build(lambda: model, build_on=build_on)


def is_model(value):
    """Whether `value` is a Keras model already (not `module:callable` text or a factory)."""
    return not isinstance(value, str) and hasattr(value, "trainable_weights")


@dataclasses.dataclass(frozen=True)
class Template:
    """A model to plan with: its weights' paths, shapes, dtypes and object graph.

    Attributes:
        model: the Keras model. Built by `load_template`, the values of its
            weights are undefined (memory never written); `initial_value`
            gives the values a usual build would start from.
        initializers: `{id(variable): initializer}` of the variables built
            without their values.

    Example:

        template = load_template("migrate.zoo.vgg_16:build_model")
        template.initial_value(template.model.weights[-1])  # The last bias: zeros.
    """

    model: Any
    initializers: dict = dataclasses.field(default_factory=dict)

    def initial_value(self, variable):
        """Returns, as a NumPy array, the value `variable` has in a model built as usual (a
        random initializer draws anew)."""
        initializer = self.initializers.get(id(variable))
        if initializer is None:
            return np.array(variable)
        return np.array(initializer(tuple(variable.shape), dtype=variable.dtype))


def load_template(model, *, checkpoint=None):
    """Builds a model to plan with (see `Template`), without computing its weights' values.

    A plan reads a model's weights' paths, shapes, dtypes and object graph,
    never their values, yet building a model computes every initial value:
    VGG-16's build takes 1.1 s and holds 1.3 GB above TensorFlow's own
    memory at its peak, and a model larger than the machine's memory could
    not be planned at all. Here a Keras 3 model is built inside a
    `keras.StatelessScope` that defers its variables; each then gets memory
    that is allocated and never written (`tf.raw_ops.Empty(init=False)`: no
    page of it is touched, so none is used), under the name scope it was
    created in, which a usual build names it by: the object graph is the
    same, byte for byte. A model built another way is built as usual: a
    tf_keras model, a variable given as an array, a factory that assigns
    values (pretrained weights).

    Args:
        model, checkpoint: as `load_model` takes them.

    Returns:
        A `Template`; of a model passed in built, the model as it is (checked
        as `load_model` checks it).

    Raises:
        ModelError: as `load_model`.
    """
    if is_model(model):
        return Template(load_model(model, checkpoint=checkpoint))
    try:
        # Private: where Keras lists, and registers, the variables a stateless
        # scope defers, and counts the layer names taken.
        from keras.src.backend.common import global_state
        from keras.src.backend.common import variables as keras_variables
    except ImportError:
        return Template(load_model(model, checkpoint=checkpoint))
    # The layer names a build takes (dense, dense_1, ...) are given again to
    # the next model built in this process, as they would be to a first one.
    names_key = "object_name_uids"
    names_taken = global_state.get_global_attribute(names_key)

    def names_as_before():
        global_state.set_global_attribute(
            names_key, None if names_taken is None else collections.defaultdict(int, names_taken))

    try:
        template = _deferred_template(model, checkpoint, global_state, keras_variables)
        if template is None:
            names_as_before()
            template = Template(load_model(model, checkpoint=checkpoint))
        return template
    finally:
        names_as_before()


def _deferred_template(model, checkpoint, global_state, keras_variables):
    """`load_template`'s build, given Keras's private `global_state` and `variables` modules;
    None when the model must be built as usual."""
    import keras
    import tensorflow as tf

    register = getattr(keras_variables, "register_uninitialized_variable", None)
    if register is None:
        return None
    # The name scope each variable is created in, which a usual build names it by
    # (a factory may open TensorFlow name scopes of its own around its layers).
    name_scopes = {}

    def register_in_scope(variable):
        name_scopes[id(variable)] = tf.get_current_name_scope()
        register(variable)

    deferred_key = "uninitialized_variables"
    keras_variables.register_uninitialized_variable = register_in_scope
    try:
        with keras.StatelessScope(initialize_variables=False) as scope:
            built = load_model(model, checkpoint=checkpoint)
    except Exception:  # Keras refused to defer a variable; a usual build says if the model fails.
        built = None
    finally:
        keras_variables.register_uninitialized_variable = register
    # Listed, they would be initialized as usual when the next stateless scope
    # ends (Keras builds models in such scopes).
    deferred = global_state.get_global_attribute(deferred_key) or []
    global_state.set_global_attribute(deferred_key, [])
    # A factory that assigned values (pretrained weights): the model starts from them.
    if built is None or scope.state_mapping:
        return None
    initializers = {}
    try:
        for variable in deferred:
            initializers[id(variable)] = variable._initializer
            variable._initializer = _unwritten_memory
            name_scope = name_scopes[id(variable)]
            with tf.name_scope(name_scope + "/" if name_scope else ""):
                variable._deferred_initialize()
    except Exception:  # A variable Keras defers otherwise: the model is built as usual.
        return None
    return Template(built, initializers)


def _unwritten_memory(shape, dtype=None):
    """A Keras initializer whose tensor's memory is allocated and never written."""
    import tensorflow as tf

    return tf.raw_ops.Empty(shape=shape, dtype=dtype, init=False)


def _name(factory):
    factory = getattr(factory, "func", factory)  # A factory given its checkpoint.
    return getattr(factory, "__qualname__", type(factory).__name__)


def is_keras_3(model):
    return type(model).__module__.startswith("keras.")


def weight_path(variable):
    """Returns the path a table targets: Keras 3 `path`, or a tf_keras name without `:0`."""
    path = getattr(variable, "path", None)
    if isinstance(path, str) and path:
        return path
    name = variable.name
    return name[:-2] if name.endswith(":0") else name


def weights(model):
    """Returns a dict of path to `(TargetWeight, variable)` for every model weight.

    Raises:
        ModelError: two weights share a path, so a table could not tell them apart.
    """
    found = {}
    for trainable, variables in ((True, model.trainable_weights),
                                 (False, model.non_trainable_weights)):
        for variable in variables:
            path = weight_path(variable)
            if path in found:
                raise ModelError(
                    f"Two model weights share a path, so a table cannot tell them apart. "
                    f"Expected unique paths (give their layers unique names). Received: "
                    f"path={path!r}")
            dtype = variable.dtype
            dtype = getattr(dtype, "name", dtype)
            found[path] = (TargetWeight(path, tuple(int(size) for size in variable.shape),
                                        str(dtype), trainable), variable)
    return found


def object_paths(root):
    """Returns `{id(trackable): path tuple}` for everything a checkpoint of `root` reaches.

    A breadth-first walk of the same object graph `tf.train.Checkpoint`
    writes, so a weight missing here would be missing from the checkpoint
    (Keras 3 leaves out layers held in plain Python lists and dicts).
    """
    paths = {id(root): ()}
    queue = [root]
    while queue:
        node = queue.pop(0)
        children = (node._trackable_children(save_type="checkpoint")
                    if _takes_save_type(node._trackable_children) else node._trackable_children())
        for name, child in children.items():
            if id(child) not in paths:
                paths[id(child)] = paths[id(node)] + (name,)
                queue.append(child)
    return paths


def _takes_save_type(method):
    # Some trackables' `_trackable_children` take no `save_type`; asking the
    # signature (not catching TypeError) keeps errors inside the call visible.
    parameters = inspect.signature(method).parameters.values()
    return any(parameter.name == "save_type" or parameter.kind is parameter.VAR_KEYWORD
               for parameter in parameters)


def reachable_paths(model, target_paths, variables_by_path):
    """Returns `{target path: object path tuple below the model}` for the weights to be written.

    Raises:
        ModelError: some weights are not reachable from the model's object
            graph (Keras 3 silently leaves out layers held in plain Python
            lists or dicts), so a checkpoint could not carry them.
    """
    paths = object_paths(model)
    found, missing = {}, []
    for target in target_paths:
        object_path = paths.get(id(variables_by_path[target]))
        if object_path is None:
            missing.append(target)
        else:
            found[target] = object_path
    if missing:
        raise ModelError(
            f"{len(missing)} weight(s) cannot be reached from the model's object graph, so a "
            f"tf.train.Checkpoint would silently leave them out (Keras 3 does not track layers "
            f"held in plain Python lists or dicts; assign them to attributes or use a Keras "
            f"container). Expected every weight reachable. Received: unreachable weights "
            f"{', '.join(missing[:10])}")
    return found
