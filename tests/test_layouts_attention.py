"""Tests for the `bert_attention`, `split` and `concat` layout converters."""

import hypothesis
from hypothesis import strategies as st
import keras
import numpy as np
import pytest

from legacy_graphs import bert_encoder as legacy_bert_encoder
from legacy_graphs import compat
from migrate.mapping import layouts
from migrate.mapping.layouts import LayoutError

RELATIVE_TOLERANCE = 1e-5
_SETTINGS = hypothesis.settings(max_examples=5, deadline=None, derandomize=True,
                                database=None)


def _tf1_bert_attention(inputs, *, heads, size_per_head, seed):
    """Runs BERT's attention block (self + output dense) in a TF1 graph.

    Returns:
        `(outputs, variables)`: the `[batch, seq, hidden]` result and the
        block's variables by their name under the `attention` scope.
    """
    tf = compat.import_tf_v1()
    batch_size, seq_length, hidden_size = inputs.shape
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(seed)
        layer_input = tf.constant(inputs.reshape(batch_size * seq_length, hidden_size))
        is_training = tf.placeholder_with_default(False, [], name="is_training")
        with tf.variable_scope("bert/encoder/layer_0/attention"):
            with tf.variable_scope("self"):
                context = legacy_bert_encoder.attention_layer(
                    layer_input, attention_mask=None, num_attention_heads=heads,
                    size_per_head=size_per_head, batch_size=batch_size,
                    seq_length=seq_length, is_training=is_training, initializer_range=0.5)
            with tf.variable_scope("output"):
                outputs = tf.layers.dense(
                    context, hidden_size,
                    kernel_initializer=tf.truncated_normal_initializer(stddev=0.5))
        # Biases start at zero; random ones make a bias layout mistake show.
        randomize_biases = [
            variable.assign(tf.random.normal(variable.shape, seed=seed))
            for variable in tf.global_variables() if variable.op.name.endswith("bias")]
        with tf.Session(graph=graph) as session:
            session.run(tf.global_variables_initializer())
            session.run(randomize_biases)
            scope = "bert/encoder/layer_0/attention/"
            variables = {variable.op.name[len(scope):]: session.run(variable)
                         for variable in tf.global_variables()}
            result = session.run(outputs)
    return result.reshape(batch_size, seq_length, hidden_size), variables


def _keras_attention(heads, size_per_head, hidden_size):
    layer = keras.layers.MultiHeadAttention(heads, key_dim=size_per_head, name="attention")
    probe = np.zeros((1, 1, hidden_size), "float32")
    layer(probe, probe)
    return layer


def _assign(layer, weights):
    by_path = {variable.path: variable for variable in layer.weights}
    assert sorted(by_path) == sorted(f"attention/{part}" for part in weights)
    for part, value in weights.items():
        by_path[f"attention/{part}"].assign(value)


def _target_shapes(layer):
    return {variable.path[len("attention/"):]: tuple(variable.shape)
            for variable in layer.weights}


def _relative_difference(actual, expected):
    return float(np.max(np.abs(actual - expected)) / np.max(np.abs(expected)))


@hypothesis.given(heads=st.integers(1, 4), size_per_head=st.integers(1, 6),
                  batch_size=st.integers(1, 3), seq_length=st.integers(1, 5),
                  seed=st.integers(0, 2**16))
@_SETTINGS
def test_bert_attention_matches_tf1(heads, size_per_head, batch_size, seq_length, seed):
    hidden_size = heads * size_per_head
    inputs = np.random.default_rng(seed).normal(
        size=(batch_size, seq_length, hidden_size)).astype("float32")
    expected, variables = _tf1_bert_attention(inputs, heads=heads,
                                              size_per_head=size_per_head, seed=seed)
    converter = layouts.get("bert_attention")
    sources = {part: variables[part] for part in converter.source_parts}
    layer = _keras_attention(heads, size_per_head, hidden_size)
    target_shapes = _target_shapes(layer)

    converted = converter.convert(sources, target_shapes, {"heads": None})

    assert {part: value.shape for part, value in converted.items()} == target_shapes
    assert converter.output_shapes(
        {part: value.shape for part, value in sources.items()}, target_shapes,
        {"heads": None}) == target_shapes
    _assign(layer, converted)
    actual = keras.ops.convert_to_numpy(layer(inputs, inputs))
    assert _relative_difference(actual, expected) < RELATIVE_TOLERANCE


def test_bert_attention_parity_depends_on_the_head_layout():
    # A control for the test above: a plausible wrong layout (heads as the
    # fast axis) must be far off, so parity there is not an accident.
    heads, size_per_head = 4, 3
    inputs = np.random.default_rng(1).normal(size=(2, 5, 12)).astype("float32")
    expected, variables = _tf1_bert_attention(inputs, heads=heads,
                                              size_per_head=size_per_head, seed=1)
    converter = layouts.get("bert_attention")
    layer = _keras_attention(heads, size_per_head, 12)
    converted = converter.convert({part: variables[part] for part in converter.source_parts},
                                  _target_shapes(layer), {})
    _assign(layer, converted)
    assert _relative_difference(keras.ops.convert_to_numpy(layer(inputs, inputs)),
                                expected) < RELATIVE_TOLERANCE

    wrong = dict(converted)
    for projection in ("query", "key", "value"):
        kernel = variables[f"self/{projection}/kernel"]
        wrong[f"{projection}/kernel"] = kernel.reshape(12, size_per_head, heads).transpose(0, 2, 1)
    _assign(layer, wrong)
    assert _relative_difference(keras.ops.convert_to_numpy(layer(inputs, inputs)),
                                expected) > 0.01


def _source_shapes(hidden_size, width):
    shapes = {}
    for projection in ("query", "key", "value"):
        shapes[f"self/{projection}/kernel"] = (hidden_size, width)
        shapes[f"self/{projection}/bias"] = (width,)
    shapes["output/dense/kernel"] = (width, hidden_size)
    shapes["output/dense/bias"] = (hidden_size,)
    return shapes


def test_bert_attention_heads_parameter_without_target_shapes():
    converter = layouts.get("bert_attention")

    shapes = converter.output_shapes(_source_shapes(16, 16), {}, {"heads": 4})

    assert shapes["query/kernel"] == (16, 4, 4)
    assert shapes["value/bias"] == (4, 4)
    assert shapes["attention_output/kernel"] == (4, 4, 16)
    assert shapes["attention_output/bias"] == (16,)


def test_bert_attention_refuses_heads_parameter_that_contradicts_target_shapes():
    converter = layouts.get("bert_attention")
    layer = _keras_attention(4, 4, 16)

    with pytest.raises(LayoutError, match=r"Expected 2 heads .*heads.* parameter.*heads=4"):
        converter.output_shapes(_source_shapes(16, 16), _target_shapes(layer), {"heads": 2})


def test_bert_attention_refuses_target_shapes_that_disagree():
    converter = layouts.get("bert_attention")
    target_shapes = _target_shapes(_keras_attention(4, 4, 16))
    target_shapes["key/kernel"] = (16, 2, 8)

    with pytest.raises(LayoutError, match=r"Expected 4 heads .*query/kernel.*heads=2.*key/kernel"):
        converter.output_shapes(_source_shapes(16, 16), target_shapes, {})


def test_bert_attention_refuses_width_not_divisible_by_heads():
    converter = layouts.get("bert_attention")

    with pytest.raises(LayoutError, match=r"divide into 3 heads.*shape=\(16, 16\)"):
        converter.output_shapes(_source_shapes(16, 16), {}, {"heads": 3})


def test_bert_attention_needs_some_number_of_heads():
    converter = layouts.get("bert_attention")

    with pytest.raises(LayoutError, match=r"Received: heads=None"):
        converter.output_shapes(_source_shapes(16, 16), {}, {"heads": None})


@hypothesis.given(sizes=st.lists(st.integers(1, 4), min_size=1, max_size=4),
                  rows=st.integers(1, 3), axis=st.sampled_from([0, 1, -1]),
                  seed=st.integers(0, 2**16))
@_SETTINGS
def test_split_and_concat_round_trip(sizes, rows, axis, seed):
    rng = np.random.default_rng(seed)
    fused_axis = axis % 2
    names = [f"part_{index}/kernel" for index in range(len(sizes))]
    pieces = [rng.normal(size=(size, rows) if fused_axis == 0 else (rows, size))
              for size in sizes]
    concat = layouts.get("concat")
    split = layouts.get("split")
    concat_parameters = {**concat.parameters, "source_parts": names,
                         "target_part": "fused", "axis": axis}
    split_parameters = {**split.parameters, "source_part": "fused", "target_parts": names,
                        "axis": axis, "sizes": sizes}

    fused = concat.convert(dict(zip(names, pieces)), {}, concat_parameters)["fused"]
    restored = split.convert({"fused": fused}, {}, split_parameters)

    assert fused.shape[fused_axis] == sum(sizes)
    assert concat.sources(concat_parameters) == tuple(names)
    assert split.targets(split_parameters) == tuple(names)
    assert list(restored) == names
    for name, piece in zip(names, pieces):
        np.testing.assert_array_equal(restored[name], piece)
    np.testing.assert_array_equal(
        concat.convert(restored, {}, concat_parameters)["fused"], fused)


def test_split_of_fused_qkv_equals_bert_attention_conversion():
    rng = np.random.default_rng(0)
    hidden_size, heads = 12, 3
    kernels = [rng.normal(size=(hidden_size, hidden_size)) for _ in range(3)]
    target_shapes = _target_shapes(_keras_attention(heads, hidden_size // heads, hidden_size))
    split = layouts.get("split")
    parameters = {**split.parameters, "source_part": "c_attn/w",
                  "target_parts": ["query/kernel", "key/kernel", "value/kernel"],
                  "reshape": True}

    pieces = split.convert({"c_attn/w": np.concatenate(kernels, axis=1)}, target_shapes,
                           parameters)

    sources = {part: np.zeros(shape) for part, shape in _source_shapes(12, 12).items()}
    for projection, kernel in zip(("query", "key", "value"), kernels):
        sources[f"self/{projection}/kernel"] = kernel
    expected = layouts.get("bert_attention").convert(sources, target_shapes, {})
    for part in ("query/kernel", "key/kernel", "value/kernel"):
        assert pieces[part].shape == (12, 3, 4)
        np.testing.assert_array_equal(pieces[part], expected[part])


def test_split_refuses_sizes_that_do_not_add_up():
    split = layouts.get("split")
    parameters = {**split.parameters, "source_part": "w", "target_parts": ["a", "b"],
                  "sizes": [2, 3]}

    with pytest.raises(LayoutError, match=r"adding up to the fused axis 1 of size 6.*\[2, 3\]"):
        split.output_shapes({"w": (4, 6)}, {}, parameters)


def test_split_refuses_unequal_parts_without_sizes():
    split = layouts.get("split")
    parameters = {**split.parameters, "source_part": "w", "target_parts": ["a", "b", "c"]}

    with pytest.raises(LayoutError, match=r"divide into 3 equal parts.*shape=\(4, 7\)"):
        split.output_shapes({"w": (4, 7)}, {}, parameters)


def test_split_refuses_shape_mismatch_unless_reshaping():
    split = layouts.get("split")
    parameters = {**split.parameters, "source_part": "w", "target_parts": ["a", "b"]}

    with pytest.raises(LayoutError, match=r"Keras shape \(4, 1, 3\).*shape=\(4, 3\)"):
        split.output_shapes({"w": (4, 6)}, {"a": (4, 1, 3), "b": (4, 1, 3)}, parameters)
    assert split.output_shapes({"w": (4, 6)}, {"a": (4, 1, 3), "b": (4, 1, 3)},
                               {**parameters, "reshape": True}) == {"a": (4, 1, 3),
                                                                    "b": (4, 1, 3)}


def test_concat_refuses_parts_that_differ_off_the_axis():
    concat = layouts.get("concat")
    parameters = {**concat.parameters, "source_parts": ["a", "b"], "target_part": "kernel",
                  "axis": 1}

    with pytest.raises(LayoutError, match=r"except on axis 1.*'b' shape=\(3, 2\)"):
        concat.output_shapes({"a": (4, 2), "b": (3, 2)}, {}, parameters)


def test_concat_needs_source_parts():
    concat = layouts.get("concat")

    with pytest.raises(LayoutError, match=r"source_parts.*Received: source_parts=None"):
        concat.sources(dict(concat.parameters))


_FUSED_TABLE = r"""
[[rule]]
match = 'h0/attn/c_attn'
layout = 'split'
target = 'attention'
source_part = 'kernel'
target_parts = ['query/kernel', 'key/kernel', 'value/kernel']
reshape = true

[[rule]]
match = 'h0/attn/c_attn'
layout = 'split'
target = 'attention'
source_part = 'bias'
target_parts = ['query/bias', 'key/bias', 'value/bias']
reshape = true

[[rule]]
match = 'h0/attn/c_proj/kernel'
target = 'attention/attention_output/kernel'
transform = ["reshape({heads}, {size_per_head}, -1)"]

[[rule]]
match = 'h0/attn/c_proj/bias'
target = 'attention/attention_output/bias'
"""


def _write_fused_attention_checkpoint(directory, *, heads, size_per_head, seq_length):
    """Saves a GPT-2-style attention block with one fused query/key/value projection."""
    tf = compat.import_tf_v1()
    hidden_size = heads * size_per_head
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(0)
        inputs = tf.placeholder(tf.float32, [None, seq_length, hidden_size], name="inputs")
        initializer = tf.random_normal_initializer(stddev=0.5)

        def heads_first(tensor):
            tensor = tf.reshape(tensor, [-1, seq_length, heads, size_per_head])
            return tf.transpose(tensor, [0, 2, 1, 3])

        with tf.variable_scope("h0/attn"):
            fused = tf.layers.dense(inputs, 3 * hidden_size, name="c_attn",
                                    kernel_initializer=initializer,
                                    bias_initializer=initializer)
            query, key, value = (heads_first(tensor) for tensor in tf.split(fused, 3, axis=-1))
            scores = tf.matmul(query, key, transpose_b=True) / np.sqrt(size_per_head)
            context = tf.matmul(tf.nn.softmax(scores), value)
            context = tf.reshape(tf.transpose(context, [0, 2, 1, 3]),
                                 [-1, seq_length, hidden_size])
            outputs = tf.layers.dense(context, hidden_size, name="c_proj",
                                      kernel_initializer=initializer,
                                      bias_initializer=initializer)
        tf.identity(outputs, name="outputs")
        saver = tf.train.Saver()
        with tf.Session(graph=graph) as session:
            session.run(tf.global_variables_initializer())
            return saver.save(session, str(directory / "model.ckpt"))


def test_split_converts_fused_attention_end_to_end(tmp_path):
    import migrate  # pylint: disable=g-import-not-at-top

    heads, size_per_head, seq_length = 3, 4, 5
    hidden_size = heads * size_per_head
    prefix = _write_fused_attention_checkpoint(tmp_path, heads=heads,
                                               size_per_head=size_per_head,
                                               seq_length=seq_length)

    def build_model():
        inputs = keras.Input((seq_length, hidden_size))
        outputs = keras.layers.MultiHeadAttention(
            heads, key_dim=size_per_head, name="attention")(inputs, inputs)
        return keras.Model(inputs, outputs)

    table = migrate.MappingTable.from_text(
        _FUSED_TABLE.format(heads=heads, size_per_head=size_per_head))
    migrate.convert(prefix, table, build_model(), str(tmp_path / "converted"))
    model = build_model()
    migrate.restore(model, str(tmp_path / "converted"))
    report = migrate.verify(prefix, model, input_tensor="inputs:0", output_tensor="outputs:0",
                            input_shape=(seq_length, hidden_size))

    assert report.passed
    assert report.max_rel_diff < RELATIVE_TOLERANCE
