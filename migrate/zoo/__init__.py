"""Built-in conversions: a legacy TF1 model, its Keras 3 twin, and the table between them.

Each entry is a module `migrate/zoo/<name>.py` that defines `build_model()`
(returns a built Keras 3 model equivalent to the legacy graph; with a
`checkpoint` parameter, it is given the legacy checkpoint's prefix to size
the model from), and its TOML mapping table beside it,
`migrate/zoo/<name>.toml`. The legacy side is `legacy_graphs/<name>.py`,
which also names the tensors the verifier uses; the module's optional
`VERIFY` dict overrides them with `migrate.verify`'s keyword arguments
(pairs `KERAS=TENSOR` for a model's named inputs and outputs, `feeds`,
`keras_feeds`).

Example:

    entry = migrate.zoo.get("resnet_v1_50")
    model = entry.build_model()
"""

import dataclasses
import importlib
import os
from typing import Any, Callable

from migrate.errors import ArgumentError
from migrate.errors import did_you_mean

ZOO_NAMES = (
    "small_convnet",
    "resnet_v1_50",
    "vgg_16",
    "lstm_language_model",
    "gru_classifier",
    "bilstm_tagger",
    "bert_encoder",
    "google_bert",
)


@dataclasses.dataclass(frozen=True)
class ZooEntry:
    """One built-in conversion.

    Attributes:
        name: the entry's name, shared by `legacy_graphs/<name>.py`.
        description: one line for `python -m migrate zoo`.
        table_path: path of the entry's TOML mapping table.
        model_factory: `module:callable` text that builds the Keras model.
        build_model: the callable itself.
        verify: keyword arguments for `migrate.verify` (tensor names or
            `KERAS=TENSOR` pairs, input shape and range, feeds, tolerance).
    """

    name: str
    description: str
    table_path: str
    model_factory: str
    build_model: Callable[[], Any]
    verify: dict


def get(name):
    """Returns the `ZooEntry` called `name`.

    Args:
        name: one of `ZOO_NAMES`.

    Returns:
        The `ZooEntry`; its model module is imported, no model is built.

    Raises:
        ArgumentError: there is no such entry; the message names the closest
            one and lists the known ones.

    Example:

        model = get("resnet_v1_50").build_model()

    A mistyped name suggests the closest entry:

    >>> get("resnet50")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    migrate.errors.ArgumentError: Unknown zoo entry. Did you mean 'resnet_v1_50'? ...
    """
    _check_name(name)
    module = importlib.import_module(f"migrate.zoo.{name}")
    builder = importlib.import_module(f"legacy_graphs.{name}")
    verify = {
        "input_tensor": builder.INPUT_TENSOR,
        "output_tensor": builder.OUTPUT_TENSOR,
        "input_shape": tuple(builder.INPUT_SHAPE),
        "input_max": builder.INPUT_MAX,
        "tolerance": getattr(module, "TOLERANCE", 1e-5),
        **getattr(module, "VERIFY", {}),
    }
    return ZooEntry(
        name=name,
        description=(module.__doc__ or "").strip().splitlines()[0],
        table_path=table_path(name),
        model_factory=model_factory(name),
        build_model=module.build_model,
        verify=verify,
    )


def table_path(name):
    """Returns the path of entry `name`'s mapping table, without importing its model module.

    The module imports Keras (and so TensorFlow); a batch's launcher needs
    only the table and the factory's name, which its workers import.

    Raises:
        ArgumentError: there is no such entry.

    Example:

    >>> os.path.basename(table_path("small_convnet"))
    'small_convnet.toml'
    """
    _check_name(name)
    return os.path.join(os.path.dirname(__file__), f"{name}.toml")


def model_factory(name):
    """Returns entry `name`'s model factory as `module:callable` text, without importing it.

    Raises:
        ArgumentError: there is no such entry.

    Example:

    >>> model_factory("small_convnet")
    'migrate.zoo.small_convnet:build_model'
    """
    _check_name(name)
    return f"migrate.zoo.{name}:build_model"


def _check_name(name):
    if name not in ZOO_NAMES:
        raise ArgumentError(
            f"Unknown zoo entry.{did_you_mean(name, ZOO_NAMES)} Expected one of "
            f"{', '.join(ZOO_NAMES)}. Received: zoo={name!r}")


def available():
    """Returns the names of the entries whose modules are present."""
    here = os.path.dirname(__file__)
    return tuple(name for name in ZOO_NAMES if os.path.exists(os.path.join(here, f"{name}.py")))
