"""Properties on generated inputs: the table engine, pattern bound, transforms, RNN layouts.

tests/test_transforms.py already round-trips one fixed chain of transforms on
float32 and tests/test_layouts_recurrent.py compares the TF1 LSTM and GRU
cells with Keras on random shapes; this file adds what they leave out:
random chains of every transform (including invalid ones), other dtypes,
`unpartition_mod`, the converters' algebra on random values, the fused LSTM
kernel on random shapes, and the TF1 cells on random values and batch sizes.
"""

import json
import random
import re
import time

import keras
import numpy as np
import pytest
from hypothesis import HealthCheck
from hypothesis import assume
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

import damage
import test_layouts_recurrent as recurrent_tests
from migrate import MappingTable
from migrate import TableError
from migrate.mapping import layouts
from migrate.mapping import table as table_lib
from migrate.mapping import transforms

# Letters a TF1 name can hold (any printable character, slashes included);
# TOML strings cannot carry control characters, so names here have none.
NAME_CHARACTERS = st.characters(blacklist_categories=("Cc", "Cs"))
NAMES = st.text(NAME_CHARACTERS, min_size=1, max_size=40)
FAST = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
FEW = settings(max_examples=4, deadline=None, derandomize=True,
               suppress_health_check=[HealthCheck.too_slow])


def _toml(value):
    # JSON escapes are TOML escapes as long as no surrogate pair is needed.
    return json.dumps(value, ensure_ascii=False)


def _table(*rules):
    text = "\n".join(
        "[[rule]]\n" + "".join(f"{key} = {_toml(value)}\n" for key, value in rule.items())
        for rule in rules)
    return MappingTable.from_text(text)


# The table engine ---------------------------------------------------------------

@FAST
@given(name=NAMES, other=NAMES)
def test_an_escaped_name_matches_itself_and_nothing_else(name, other):
    table = _table({"match": re.escape(name), "target": "keras/weight"})
    assert table.lookup(name).target == "keras/weight"
    assert (table.lookup(other) is None) == (other != name)


@FAST
@given(rules=st.lists(st.tuples(st.sampled_from(("exact", "prefix", "suffix")), NAMES),
                      min_size=1, max_size=6),
       name=NAMES)
def test_the_first_rule_that_fully_matches_wins(rules, name):
    patterns = [{"exact": re.escape(text), "prefix": re.escape(text) + ".*",
                 "suffix": ".*" + re.escape(text)}[kind] for kind, text in rules]
    table = _table(*({"match": pattern, "target": f"rule_{index}"}
                     for index, pattern in enumerate(patterns, 1)))
    expected = next((index for index, pattern in enumerate(patterns, 1)
                     if re.fullmatch(pattern, name)), None)
    found = table.lookup(name)
    assert (found.rule.index if found else None) == expected
    if found:
        assert found.target == f"rule_{expected}"


@FAST
@given(prefix=NAMES, suffix=st.text(NAME_CHARACTERS, max_size=40))
def test_groups_expand_into_the_target_verbatim(prefix, suffix):
    table = _table({"match": re.escape(prefix) + "/(.*)", "target": "keras/\\1"})
    assert table.lookup(f"{prefix}/{suffix}").target == f"keras/{suffix}"


@FAST
@given(data=st.binary(max_size=300))
def test_any_bytes_make_a_table_or_a_table_error(data):
    try:
        MappingTable.from_bytes(data)
    except TableError:
        pass


@FAST
@given(seed=st.integers(0, 2**32 - 1))
def test_mutated_zoo_tables_make_a_table_or_a_table_error(seed):
    from migrate import zoo
    rng = random.Random(seed)
    path = zoo.get(rng.choice(zoo.available())).table_path
    data, description = damage.mutate_table(open(path, encoding="utf-8").read(), rng)
    try:
        table = MappingTable.from_bytes(data)
    except TableError:
        return
    for name in ("conv/kernel", "a" * table_lib.MAX_NAME_LENGTH, "a/" * 512):
        table.lookup(name)


# Generated regexes: atoms, repeats and groups in the shapes table authors write.
_ATOMS = ("a", "b", "/", ".", "[ab]", "[^/]", "\\w", "\\d", "(?:ab|a)", "(kernel|bias)")
_REPEATS = ("", "", "*", "+", "?", "{2}", "{0,3}", "*?", "++")
_ELEMENTS = st.tuples(st.sampled_from(_ATOMS), st.sampled_from(_REPEATS),
                      st.booleans()).map(
    lambda parts: (f"({parts[0]}{parts[1]})" if parts[2] else parts[0] + parts[1]))
PATTERNS = st.lists(_ELEMENTS, min_size=1, max_size=6).map("".join)
HOSTILE_NAMES = ("a" * table_lib.MAX_NAME_LENGTH, "a/" * (table_lib.MAX_NAME_LENGTH // 2),
                 "ab" * (table_lib.MAX_NAME_LENGTH // 2),
                 "a" * (table_lib.MAX_NAME_LENGTH - 1) + "!",
                 "1" * table_lib.MAX_NAME_LENGTH)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pattern=PATTERNS)
def test_every_pattern_a_table_accepts_matches_hostile_names_quickly(pattern):
    try:
        table = _table({"match": pattern, "target": "x"})
    except TableError as error:
        assert "backtracking" in str(error) or "repetition" in str(error) or "regex" in str(error)
        return
    started = time.perf_counter()
    for name in HOSTILE_NAMES:
        table.lookup(name)
    # Accepted patterns need at most about 10^7 steps on 1024 characters.
    assert time.perf_counter() - started < 3.0, pattern


# Transforms -----------------------------------------------------------------------

SHAPES = st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple)
# Casts that lose nothing, so casting back restores every value exactly.
LOSSLESS_CASTS = {"float16": ("float32", "float64"), "float32": ("float64",),
                  "int8": ("int16", "int32", "int64", "float32"), "uint8": ("int16", "int64"),
                  "bool": ("int8", "uint8", "float32")}


def _any_transform(shape):
    """Draws a transform that may or may not fit `shape` (spec errors are part of the test)."""
    rank = len(shape)
    integers = st.integers(-rank - 2, rank + 2)
    return st.one_of(
        st.lists(st.sampled_from((-1, 1, 2, 3, 4, 6)), min_size=1, max_size=4).map(
            lambda sizes: transforms.Transform("reshape", tuple(sizes))),
        st.permutations(range(rank)).map(lambda axes: transforms.Transform("transpose",
                                                                            tuple(axes))),
        st.lists(integers, max_size=2).map(lambda axes: transforms.Transform("squeeze",
                                                                             tuple(axes))),
        integers.map(lambda axis: transforms.Transform("expand_dims", (axis,))),
        st.sampled_from(transforms.DTYPES).map(lambda dtype: transforms.Transform("cast",
                                                                                  (dtype,))),
        st.integers(1, 4).map(lambda parts: transforms.Transform("unpartition_mod", (parts,))))


@FAST
@given(shape=SHAPES, data=st.data())
def test_printed_transforms_parse_back_to_themselves(shape, data):
    transform = data.draw(_any_transform(shape))
    assert transforms.parse(str(transform)) == transform


@FAST
@given(shape=SHAPES, data=st.data())
def test_random_chains_either_fit_and_agree_with_numpy_or_fail_in_the_plan(shape, data):
    steps, current = [], shape
    for _ in range(data.draw(st.integers(1, 4))):
        transform = data.draw(_any_transform(current))
        try:
            # Only what a table can spell: the parser's argument checks apply.
            steps.append(transforms.parse(str(transform)))
            current = transforms.output_spec(steps, shape, "float32")[0]
        except transforms.TransformError:
            break
    array = np.random.default_rng(0).uniform(-2, 2, shape).astype("float32")
    try:
        spec = transforms.output_spec(steps, shape, "float32")
    except transforms.TransformError:
        return  # The plan reports it; nothing is read.
    result = transforms.apply_all(steps, array)
    assert (tuple(result.shape), str(result.dtype)) == spec


def _invertible_step(shape, dtype):
    rank = len(shape)
    ones = [axis for axis, size in enumerate(shape) if size == 1]
    options = [
        st.just("reshape(-1)"),
        st.integers(-rank - 1, rank).map(lambda axis: f"expand_dims({axis})"),
        st.sampled_from(LOSSLESS_CASTS.get(dtype, ("float64",))).map(lambda to: f"cast({to})"),
    ]
    if rank:
        options.append(st.permutations(range(rank)).map(
            lambda axes: f"transpose({', '.join(map(str, axes))})"))
    if ones:
        options.append(st.sampled_from(ones).map(lambda axis: f"squeeze({axis})"))
    return st.one_of(*options)


@FAST
@given(shape=SHAPES, dtype=st.sampled_from(sorted(LOSSLESS_CASTS)), data=st.data())
def test_inverse_undoes_any_invertible_chain_exactly(shape, dtype, data):
    rng = np.random.default_rng(1)
    array = {"float16": lambda: rng.standard_normal(shape).astype("float16"),
             "float32": lambda: rng.standard_normal(shape).astype("float32"),
             "int8": lambda: rng.integers(-128, 128, shape).astype("int8"),
             "uint8": lambda: rng.integers(0, 256, shape).astype("uint8"),
             "bool": lambda: rng.integers(0, 2, shape).astype(bool)}[dtype]()
    steps, current_shape, current_dtype = [], shape, dtype
    for _ in range(data.draw(st.integers(1, 5))):
        if len(current_shape) >= 6:
            break
        steps.append(transforms.parse(data.draw(_invertible_step(current_shape, current_dtype))))
        current_shape, current_dtype = transforms.output_spec(steps, shape, dtype)
    result = transforms.apply_all(steps, array)
    restored = transforms.apply_all(transforms.inverse(steps, shape, dtype), result)
    assert restored.dtype == array.dtype and restored.shape == array.shape
    np.testing.assert_array_equal(restored, array)


@FAST
@given(rows=st.integers(1, 40), partitions=st.integers(1, 6), columns=st.integers(1, 3))
def test_unpartition_mod_reassembles_a_mod_partitioned_embedding(rows, partitions, columns):
    assume(partitions <= rows)
    table = np.arange(rows * columns, dtype="float32").reshape(rows, columns)
    # TF1's mod strategy: id i lives in part i % P at row i // P; the Saver
    # stores the parts one after another under one key.
    saved = np.concatenate([table[part::partitions] for part in range(partitions)])
    step = transforms.parse_all([f"unpartition_mod({partitions})"])
    assert transforms.output_spec(step, saved.shape, "float32") == (saved.shape, "float32")
    np.testing.assert_array_equal(transforms.apply_all(step, saved), table)
    with pytest.raises(transforms.TransformError, match="no inverse"):
        transforms.inverse(step, saved.shape, "float32")


# Recurrent layouts ---------------------------------------------------------------

@FAST
@given(input_dim=st.integers(1, 6), units=st.integers(1, 6), forget_bias=st.floats(-3, 3),
       seed=st.integers(0, 2**31))
def test_lstm_converter_moves_every_value_and_adds_only_the_forget_bias(input_dim, units,
                                                                         forget_bias, seed):
    rng = np.random.default_rng(seed)
    kernel = rng.standard_normal((input_dim + units, 4 * units)).astype("float32")
    bias = rng.standard_normal(4 * units).astype("float32")
    converted = layouts.get("lstm").convert({"kernel": kernel, "bias": bias}, {},
                                            {"forget_bias": forget_bias})
    stacked = np.concatenate([converted["kernel"], converted["recurrent_kernel"]])
    # Columns are permuted gate blocks (i, j, f, o -> i, f, j, o), rows untouched.
    blocks = np.split(kernel, 4, axis=1)
    np.testing.assert_array_equal(stacked, np.concatenate([blocks[i] for i in (0, 2, 1, 3)], 1))
    bias_blocks = np.split(bias, 4)
    np.testing.assert_allclose(
        converted["bias"], np.concatenate([bias_blocks[0], bias_blocks[2] + np.float32(forget_bias),
                                           bias_blocks[1], bias_blocks[3]]), rtol=0, atol=1e-6)


@FAST
@given(input_dim=st.integers(1, 6), units=st.integers(1, 6), seed=st.integers(0, 2**31))
def test_gru_converter_only_reorders_gates(input_dim, units, seed):
    rng = np.random.default_rng(seed)
    sources = {"gates/kernel": rng.standard_normal((input_dim + units, 2 * units)),
               "gates/bias": rng.standard_normal(2 * units),
               "candidate/kernel": rng.standard_normal((input_dim + units, units)),
               "candidate/bias": rng.standard_normal(units)}
    converted = layouts.get("gru").convert(sources, {}, {})
    reset, update = np.split(sources["gates/kernel"], 2, axis=1)
    np.testing.assert_array_equal(
        np.concatenate([converted["kernel"], converted["recurrent_kernel"]]),
        np.concatenate([update, reset, sources["candidate/kernel"]], axis=1))
    reset_bias, update_bias = np.split(sources["gates/bias"], 2)
    np.testing.assert_array_equal(converted["bias"], np.concatenate(
        [update_bias, reset_bias, sources["candidate/bias"]]))


@FEW
@given(input_dim=st.integers(1, 6), units=st.integers(1, 6), batch=st.integers(1, 4),
       time_steps=st.integers(1, 6), forget_bias=st.floats(0, 2),
       cudnn=st.booleans(), seed=st.integers(0, 2**31))
def test_fused_lstm_kernel_matches_keras_on_random_shapes(input_dim, units, batch, time_steps,
                                                          forget_bias, cudnn, seed):
    rng = np.random.default_rng(seed)
    kernel = rng.uniform(-0.8, 0.8, [input_dim + units, 4 * units]).astype(np.float32)
    bias = rng.uniform(-0.8, 0.8, [4 * units]).astype(np.float32)
    inputs = rng.uniform(-3, 3, (batch, time_steps, input_dim)).astype(np.float32)
    forget_bias = 0.0 if cudnn else forget_bias  # CudnnCompatibleLSTMCell has none.
    expected = recurrent_tests._block_lstm(inputs, kernel, bias, forget_bias)
    layer = recurrent_tests._keras_rnn(keras.layers.LSTM(units, return_sequences=True), input_dim)
    parameters = {} if cudnn else {"forget_bias": forget_bias}
    recurrent_tests._convert("cudnn_compatible_lstm" if cudnn else "lstm",
                             {"cell/kernel": kernel, "cell/bias": bias}, "cell", layer,
                             **parameters)
    assert recurrent_tests._relative_error(layer(inputs), expected) < recurrent_tests.TOLERANCE


@FEW
@given(gru=st.booleans(), units=st.integers(1, 5), batch=st.integers(1, 5),
       scale=st.sampled_from([0.1, 1.0, 3.0]), seed=st.integers(0, 2**31))
def test_tf1_cells_match_keras_on_random_values_and_batches(gru, units, batch, scale, seed):
    tf = recurrent_tests.tf
    input_dim = 3
    inputs = np.random.default_rng(seed).uniform(-scale, scale, (batch, 4, input_dim)).astype(
        np.float32)

    def build(placeholder):
        cell = (tf.nn.rnn_cell.GRUCell(units) if gru
                else tf.nn.rnn_cell.LSTMCell(units, forget_bias=1.0))
        return tf.nn.dynamic_rnn(cell, placeholder, dtype=tf.float32)[0]

    expected, variables = recurrent_tests._run_tf1(build, inputs, seed=seed)
    if gru:
        layer = keras.layers.GRU(units, return_sequences=True, reset_after=False)
        layout, scope, parameters = "gru", "rnn/gru_cell", {}
    else:
        layer = keras.layers.LSTM(units, return_sequences=True)
        layout, scope, parameters = "lstm", "rnn/lstm_cell", {"forget_bias": 1.0}
    layer = recurrent_tests._keras_rnn(layer, input_dim)
    recurrent_tests._convert(layout, variables, scope, layer, **parameters)
    assert recurrent_tests._relative_error(layer(inputs), expected) < recurrent_tests.TOLERANCE
