"""Writes a canned Estimator as Keras 3 code (`model.py`) and its mapping table (`table.toml`).

The code is meant to be read and kept: one block per feature column, in the
order the Estimator's input layer concatenated them, built from Keras'
preprocessing layers (Rescaling, Discretization, StringLookup,
IntegerLookup, Hashing, HashedCrossing, CategoryEncoding, Embedding, Dense).
Three small layers written into the file do what no Keras layer does: drop
the values a feature column dropped (missing, or out of range) and say so
with a weight per id (`CategoricalIds`), combine a row's embeddings as the
column's combiner did (`Combine`), and add the linear model's bias
(`AddBias`); the binary head's probabilities are `BinaryProbabilities`.

Which ids a layer sees decides the weights' rows: a vocabulary column puts
its OOV buckets after its keys, StringLookup puts them first, so an
embedding (or a linear weight) read by StringLookup's ids has its rows
rolled by the table's `vocabulary_oov_roll(n)`, while a dense indicator or a
cross, which has no weights of its own, turns the ids back into the feature
column's order (`CategoricalIds(rotate=n)`).
"""

import json
import re

from migrate.estimator.spec import LINEAR_SCOPE

MODEL_FILE = "model.py"
TABLE_FILE = "table.toml"
FACTORY = "build"
LINEAR_BIAS_LAYER = "linear_bias"
# The Input layer's name of contrib.learn's feature "" (a bare array).
UNNAMED_FEATURE = "features"

_HEADER = '''"""{kind} as Keras 3 code, written by `python -m migrate port` from {source}.

`build()` returns a model that takes the raw features by name (a dict of
arrays, one row per example) and returns {outputs}.
The converted weights are in this file's directory:

    import migrate, model
    ported = model.build()
    migrate.restore(ported, DIRECTORY_OF_THIS_FILE)
"""

import warnings

import keras
import tensorflow as tf
from keras import layers

_PACKAGE = "estimator_port"


@keras.saving.register_keras_serializable(package=_PACKAGE)
class CategoricalIds(layers.Layer):
    """A feature column's ids, with a weight per id: 1, or 0 where the column dropped it.

    A feature column drops a missing value (`missing`: "" or -1) and an id out
    of [0, num_ids) unless it has a default. `shift` undoes a lookup's
    leading OOV index for a vocabulary without OOV buckets; `rotate` turns
    StringLookup's order (OOV buckets first) into the column's (buckets last).
    """

    def __init__(self, num_ids, missing=None, shift=0, rotate=0, default_value=-1, **kwargs):
        super().__init__(**kwargs)
        self.num_ids, self.missing, self.shift = num_ids, missing, shift
        self.rotate, self.default_value = rotate, default_value

    def call(self, ids, raw=None):
        ids = tf.cast(ids, "int64") - self.shift
        if self.rotate:
            ids = tf.math.floormod(ids - self.rotate, self.num_ids)
        valid = (ids >= 0) & (ids < self.num_ids)
        if self.default_value >= 0:
            ids = tf.where(valid, ids, tf.constant(self.default_value, "int64"))
            valid = tf.ones_like(valid)
        if raw is not None and self.missing is not None:
            valid = valid & tf.not_equal(raw, tf.constant(self.missing, raw.dtype))
        return tf.where(valid, ids, tf.zeros_like(ids)), tf.cast(valid, "float32")

    def compute_output_spec(self, ids, raw=None):
        return (keras.KerasTensor(ids.shape, "int64"), keras.KerasTensor(ids.shape, "float32"))

    def get_config(self):
        return {{**super().get_config(), "num_ids": self.num_ids, "missing": self.missing,
                "shift": self.shift, "rotate": self.rotate,
                "default_value": self.default_value}}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class Combine(layers.Layer):
    """Combines a row's embeddings of weight 1 (sum, mean or sqrtn); none gives zeros."""

    def __init__(self, combiner, **kwargs):
        super().__init__(**kwargs)
        self.combiner = combiner

    def call(self, embedded, weights):
        weights = tf.expand_dims(weights, -1)
        total = tf.reduce_sum(embedded * weights, axis=-2)
        if self.combiner == "sum":
            return total
        count = tf.maximum(tf.reduce_sum(weights, axis=-2), 1.0)
        return total / (count if self.combiner == "mean" else tf.sqrt(count))

    def compute_output_spec(self, embedded, weights):
        return keras.KerasTensor((*embedded.shape[:-2], embedded.shape[-1]), embedded.dtype)

    def get_config(self):
        return {{**super().get_config(), "combiner": self.combiner}}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class AddBias(layers.Layer):
    """The linear model's bias, added to the sum of its columns."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = units

    def build(self, input_shape):
        self.bias = self.add_weight(name="bias", shape=(self.units,), initializer="zeros")

    def call(self, inputs):
        return inputs + self.bias

    def get_config(self):
        return {{**super().get_config(), "units": self.units}}


@keras.saving.register_keras_serializable(package=_PACKAGE)
class BinaryProbabilities(layers.Layer):
    """A binary head's probabilities: softmax over (0, logit), as the Estimator computed them."""

    def call(self, logits):
        return tf.nn.softmax(tf.concat([tf.zeros_like(logits), logits], axis=-1))

    def compute_output_spec(self, logits):
        return keras.KerasTensor((*logits.shape[:-1], 2), logits.dtype)


def build():
    """Returns the {kind} as a Keras model (weights initial: restore them)."""
'''


class _Writer:
    """Accumulates the body of `build()` with unique layer names."""

    def __init__(self):
        self.lines = []
        self.names = set()
        self.rules = []  # (checkpoint variable, Keras weight path, transforms)

    def name(self, wanted):
        name = re.sub(r"[^A-Za-z0-9_]", "_", wanted)
        candidate, count = name, 1
        while candidate in self.names:
            count += 1
            candidate = f"{name}_{count}"
        self.names.add(candidate)
        return candidate

    def emit(self, line=""):
        self.lines.append(f"    {line}" if line else "")


def _literal(value):
    if isinstance(value, float):
        return repr(float(value))
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_literal(item) for item in value) + "]"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


def raw_inputs(spec):
    """`{raw feature: (dtype, shape)}` the ported model takes, from every column."""
    found = {}
    crossed_keys = set()

    def categorical(cat):
        if cat.kind == "crossed":
            for leaf in cat.crossed:
                categorical(leaf)
                crossed_keys.add(leaf.key)
            return
        found[cat.key] = (cat.dtype, (1,) if cat.kind == "bucketized" else (None,))

    for column in spec.columns():
        if column.kind == "numeric":
            found[column.key] = ("float32", (column.width,))
        else:
            categorical(column.categorical)
    return {key: (dtype, (1,) if key in crossed_keys and shape == (None,) else shape)
            for key, (dtype, shape) in sorted(found.items())}


def _ids(writer, cat, *, feature_column_order):
    """Emits the lookup of a categorical column; returns `(ids, weights)` variable names.

    With `feature_column_order`, a vocabulary's ids are turned into the
    feature column's order (for an indicator or a cross); else they stay in
    the lookup's order (an embedding's rows are rolled by the table instead).
    """
    raw = f'inputs["{cat.key}"]' if cat.key else None
    base = writer.name(cat.name if cat.kind in ("bucketized", "crossed")
                       else f"{cat.name}_lookup")
    ids_name = writer.name(f"{cat.name}_ids")
    if cat.kind == "bucketized":
        writer.emit(f'{base} = layers.Discretization(bin_boundaries={_literal(cat.boundaries)}, '
                    f'name="{base}")({raw})')
        writer.emit(f'{ids_name}, {ids_name}_weights = CategoricalIds({cat.num_ids}, '
                    f'name="{ids_name}")({base})')
        return ids_name, f"{ids_name}_weights"
    missing = '""' if cat.dtype == "string" else "-1"
    if cat.kind == "hash":
        writer.emit(f'{base} = layers.Hashing(num_bins={cat.num_ids}, name="{base}")({raw})')
        writer.emit(f'{ids_name}, {ids_name}_weights = CategoricalIds({cat.num_ids}, '
                    f'missing={missing}, name="{ids_name}")({base}, {raw})')
    elif cat.kind == "identity":
        default = f", default_value={cat.default_value}" if cat.default_value >= 0 else ""
        writer.emit(f'{ids_name}, {ids_name}_weights = CategoricalIds({cat.num_ids}, '
                    f'missing=-1{default}, name="{ids_name}")({raw}, {raw})')
    elif cat.kind == "vocabulary":
        lookup = "StringLookup" if cat.dtype == "string" else "IntegerLookup"
        oov = cat.num_oov_buckets or 1
        hashing = ', oov_method="farmhash"' if lookup == "IntegerLookup" and oov > 1 else ""
        source = (f"  # from {cat.vocabulary_file}" if cat.vocabulary_file else "")
        writer.emit(f"{base}_vocabulary = {_literal(list(cat.vocabulary))}{source}")
        writer.emit(f'{base} = layers.{lookup}(vocabulary={base}_vocabulary, '
                    f'num_oov_indices={oov}{hashing}, name="{base}")({raw})')
        if cat.num_oov_buckets:
            rotate = f", rotate={cat.num_oov_buckets}" if feature_column_order else ""
            writer.emit(f'{ids_name}, {ids_name}_weights = CategoricalIds({cat.num_ids}, '
                        f'missing={missing}{rotate}, name="{ids_name}")({base}, {raw})')
        else:
            default = f", default_value={cat.default_value}" if cat.default_value >= 0 else ""
            writer.emit(f'{ids_name}, {ids_name}_weights = CategoricalIds({cat.num_ids}, '
                        f'missing={missing}, shift=1{default}, name="{ids_name}")'
                        f'({base}, {raw})')
    elif cat.kind == "crossed":
        leaves = []
        for leaf in cat.crossed:
            if leaf.kind == "raw":
                leaves.append(f'inputs["{leaf.key}"]')
            else:
                leaves.append(_ids(writer, leaf, feature_column_order=True)[0])
        writer.emit(f'{base} = layers.HashedCrossing(num_bins={cat.num_ids}, name="{base}")'
                    f'(({", ".join(leaves)},))')
        writer.emit(f'{ids_name}, {ids_name}_weights = CategoricalIds({cat.num_ids}, '
                    f'name="{ids_name}")({base})')
    else:
        raise ValueError(f"Unknown categorical kind. Received: kind={cat.kind!r}")
    return ids_name, f"{ids_name}_weights"


def _roll(cat):
    if cat.kind == "vocabulary" and cat.num_oov_buckets:
        return [f"vocabulary_oov_roll({cat.num_oov_buckets})"]
    return []


def _dnn_column(writer, column):
    """Emits one input-layer column; returns the variable holding its dense values."""
    writer.emit(f"# {column.name}")
    if column.kind == "numeric":
        value = f'inputs["{column.key}"]'
        if column.scale != 1.0 or column.offset != 0.0:
            name = writer.name(column.name)
            writer.emit(f'{name} = layers.Rescaling(scale={_literal(column.scale)}, '
                        f'offset={_literal(column.offset)}, name="{name}")({value})')
            return name
        return value
    cat = column.categorical
    if column.kind == "embedding":
        ids, weights = _ids(writer, cat, feature_column_order=False)
        name = writer.name(column.name)
        writer.emit(f'{name} = layers.Embedding({cat.num_ids}, {column.width}, '
                    f'name="{name}")({ids})')
        writer.rules.append((column.variable, f"{name}/embeddings", _roll(cat)))
        combined = writer.name(f"{column.name}_{column.combiner}")
        writer.emit(f'{combined} = Combine("{column.combiner}", name="{combined}")'
                    f'({name}, {weights})')
        return combined
    ids, weights = _ids(writer, cat, feature_column_order=True)
    name = writer.name(column.name if column.name != cat.name else f"{column.name}_indicator")
    writer.emit(f'{name} = layers.CategoryEncoding(num_tokens={cat.num_ids}, '
                f'output_mode="count", name="{name}")({ids}, count_weights={weights})')
    return name


def _linear_column(writer, column, units):
    """Emits one linear-model column; returns the variable holding its `units` sums."""
    writer.emit(f"# linear: {column.name}")
    if column.kind == "numeric":
        value = f'inputs["{column.key}"]'
        if column.scale != 1.0 or column.offset != 0.0:
            rescaled = writer.name(f"linear_{column.name}_normalized")
            writer.emit(f'{rescaled} = layers.Rescaling(scale={_literal(column.scale)}, '
                        f'offset={_literal(column.offset)}, name="{rescaled}")({value})')
            value = rescaled
        rolled = []
    else:
        cat = column.categorical
        ids, weights = _ids(writer, cat, feature_column_order=False)
        counts = writer.name(f"linear_{column.name}_counts")
        writer.emit(f'{counts} = layers.CategoryEncoding(num_tokens={cat.num_ids}, '
                    f'output_mode="count", name="{counts}")({ids}, count_weights={weights})')
        value, rolled = counts, _roll(cat)
    name = writer.name(f"linear_{column.name}")
    writer.emit(f'{name} = layers.Dense({units}, use_bias=False, name="{name}")({value})')
    writer.rules.append((column.variable, f"{name}/kernel", rolled))
    return name


def write_model_code(spec, *, source):
    """Returns the text of `model.py` and the table's rules for `spec` (an `EstimatorSpec`).

    Returns:
        `(code, rules)`: `rules` lists `(checkpoint variable, Keras weight
        path, transforms)` for every weight, in the model's order.
    """
    writer = _Writer()
    writer.emit("inputs = {")
    for key, (dtype, shape) in raw_inputs(spec).items():
        writer.names.add(key)
        # contrib.learn fed a bare array as the feature "", which is no layer name.
        writer.emit(f'    "{key}": keras.Input(shape={shape!r}, dtype="{dtype}", '
                    f'name="{key or UNNAMED_FEATURE}"),')
    writer.emit("}")
    logits_parts = []
    if spec.has_dnn:
        writer.emit()
        writer.emit("# The DNN's input layer: its columns concatenated in the order of their "
                    "names.")
        values = [_dnn_column(writer, column) for column in spec.dnn_columns]
        writer.emit()
        if len(values) > 1:
            writer.emit(f'net = layers.Concatenate(name="input_layer")([{", ".join(values)}])')
        else:
            writer.emit(f"net = {values[0]}")
        for index, units in enumerate(spec.hidden_units):
            name = writer.name(f"hiddenlayer_{index}")
            writer.emit(f'net = layers.Dense({units}, activation="{spec.activation}", '
                        f'name="{name}")(net)')
            for part, keras_part in zip(spec.layer_weights, ("kernel", "bias")):
                writer.rules.append((f"dnn/hiddenlayer_{index}/{part}", f"{name}/{keras_part}",
                                     []))
        logits_name = writer.name("dnn_logits" if spec.has_linear else "logits")
        writer.emit(f'dnn_logits = layers.Dense({spec.units}, name="{logits_name}")(net)')
        for part, keras_part in zip(spec.layer_weights, ("kernel", "bias")):
            writer.rules.append((f"dnn/logits/{part}", f"{logits_name}/{keras_part}", []))
        if spec.centered_bias is not None:
            writer.emit("# contrib.learn's centered bias, trained apart and added to the logits.")
            bias = writer.name("centered_bias")
            writer.emit(f'dnn_logits = AddBias({spec.units}, name="{bias}")(dnn_logits)')
            writer.rules.append((spec.centered_bias, f"{bias}/bias", []))
        logits_parts.append("dnn_logits")
    if spec.has_linear:
        writer.emit()
        writer.emit("# The linear model: a weighted sum of its columns, plus a bias.")
        sums = [_linear_column(writer, column, spec.units) for column in spec.linear_columns]
        writer.emit()
        total = (f'layers.Add(name="linear_sum")([{", ".join(sums)}])' if len(sums) > 1
                 else sums[0])
        bias = writer.name(LINEAR_BIAS_LAYER)
        writer.emit(f'linear_logits = AddBias({spec.units}, name="{bias}")({total})')
        writer.rules.append((f"{LINEAR_SCOPE}/bias_weights", f"{bias}/bias", []))
        logits_parts.append("linear_logits")
    writer.emit()
    if len(logits_parts) > 1:
        writer.emit(f'logits = layers.Add(name="logits")([{", ".join(logits_parts)}])')
    else:
        writer.emit(f"logits = {logits_parts[0]}")
    if spec.head == "classifier":
        if spec.units == 1:
            writer.emit('probabilities = BinaryProbabilities(name="probabilities")(logits)')
        else:
            writer.emit('probabilities = layers.Softmax(name="probabilities")(logits)')
        outputs = '{"logits": logits, "probabilities": probabilities}'
        described = "a dict of `logits` and `probabilities`"
    else:
        outputs = '{"predictions": logits}'
        described = "a dict holding `predictions`"
    model_name = re.sub(r"(?<!^)(?=[A-Z][a-z])", "_", spec.kind).lower()
    if "" in raw_inputs(spec):
        writer.emit("# The feature keyed \"\" has an Input named otherwise: Keras warns of it.")
        writer.emit("with warnings.catch_warnings():")
        writer.emit('    warnings.filterwarnings("ignore", message="When providing `inputs` as a '
                    'dict")')
        writer.emit(f'    return keras.Model(inputs, {outputs}, name="{model_name}")')
    else:
        writer.emit(f'return keras.Model(inputs, {outputs}, name="{model_name}")')
    header = _HEADER.format(kind=_describe(spec), source=source, outputs=described)
    return header + "\n".join(writer.lines) + "\n", writer.rules


def _describe(spec):
    what = spec.kind
    if spec.head == "classifier":
        what += f" ({spec.n_classes} classes)"
    return what


# Where a tf.estimator's optimizer keeps its state (a Keras optimizer given by
# name: `training/Adam/<variable>/m`, `training/Adam/beta_1`, ...).
TRAINING_SCOPE = "training/"


def write_table(spec, rules, *, source, variables=()):
    """Returns the text of `table.toml`: one exact rule per weight, the rolls said.

    When `variables` (the checkpoint's names) holds optimizer state under
    `training/` (which a checkpoint without a graph cannot tell from weights
    by name), a last rule drops it, counted in the report.
    """
    lines = [f"description = {json.dumps(f'{spec.kind} from {source} -> model.py:build')}", ""]
    mapped = {variable for variable, _, _ in rules}
    training = [name for name in variables
                if name.startswith(TRAINING_SCOPE) and name not in mapped]
    for variable, target, transforms in rules:
        if transforms:
            lines.append("# A vocabulary's OOV buckets: the column's last rows, "
                         "StringLookup's first.")
        lines += ["[[rule]]", f"match = '{re.escape(variable)}'", f"target = '{target}'"]
        if transforms:
            lines.append(f"transform = {json.dumps(transforms)}")
        lines.append("")
    if training:
        lines += ["# The optimizer's slots and hyperparameters: training state, not weights.",
                  "[[rule]]", f"match = '{TRAINING_SCOPE}.*'", "drop = true", ""]
    return "\n".join(lines)
