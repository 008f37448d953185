"""Transforms: the grammar, shape rules that agree with NumPy, and inverse round trips."""

import re

import numpy as np
import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from migrate.mapping import transforms


def test_parse_reads_integers_and_dtype_names():
    assert transforms.parse("reshape(-1, 4096)") == transforms.Transform("reshape", (-1, 4096))
    assert transforms.parse(" transpose( 1 ,0 ) ") == transforms.Transform("transpose", (1, 0))
    assert transforms.parse("cast(float16)") == transforms.Transform("cast", ("float16",))
    assert transforms.parse("squeeze()") == transforms.Transform("squeeze", ())


@pytest.mark.parametrize("text, message", [
    ("frobnicate(1)", "Unknown transform 'frobnicate'"),
    ("reshape 1, 2", "Expected name(arguments)"),
    ("reshape(1, __import__('os'))", "is not an integer"),
    ("transpose(a, b)", "transpose takes at least 1 integer arguments"),
    ("cast(float128)", "cast takes one dtype name"),
    ("expand_dims(0, 1)", "expand_dims takes one integer axis"),
    ("reshape()", "reshape takes at least 1 integer"),
    (7, "Expected a transform string"),
])
def test_parse_refuses_malformed_transforms(text, message):
    with pytest.raises(transforms.TransformError, match=re.escape(message)):
        transforms.parse(text)


@pytest.mark.parametrize("steps, shape, message", [
    (["reshape(-1, 7)"], (4, 4), "cannot hold a tensor of shape"),
    (["reshape(3, 3)"], (4, 4), "needs 9 elements"),
    (["reshape(-1, -1)"], (4, 4), "at most one -1"),
    (["transpose(0, 0)"], (4, 4), "permutation"),
    (["squeeze(0)"], (4, 1), "only remove axes of size 1"),
])
def test_output_spec_refuses_shapes_that_do_not_fit(steps, shape, message):
    with pytest.raises(transforms.TransformError, match=message):
        transforms.output_spec(transforms.parse_all(steps), shape, "float32")


def test_vgg_fc6_reshape_is_c_order_flatten():
    kernel = np.arange(7 * 7 * 2 * 3, dtype="float32").reshape(7, 7, 2, 3)
    dense = transforms.apply_all(transforms.parse_all(["reshape(-1, 3)"]), kernel)
    # Keras Flatten of an NHWC map is C order over (h, w, c): row h*7*2 + w*2 + c.
    assert dense[(4 * 7 + 5) * 2 + 1].tolist() == kernel[4, 5, 1].tolist()


shapes = st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple)


@settings(max_examples=60, deadline=None)
@given(shape=shapes, data=st.data())
def test_shape_rules_agree_with_numpy_and_inverses_round_trip(shape, data):
    rank = len(shape)
    permutation = data.draw(st.permutations(range(rank)))
    steps = [f"transpose({', '.join(map(str, permutation))})", "reshape(-1)",
             f"reshape({', '.join(str(shape[axis]) for axis in permutation)})",
             "expand_dims(0)", "squeeze(0)", "cast(float64)"]
    parsed = transforms.parse_all(steps)
    array = np.random.default_rng(0).standard_normal(shape).astype("float32")
    result = transforms.apply_all(parsed, array)
    assert transforms.output_spec(parsed, shape, "float32") == (result.shape, str(result.dtype))
    restored = transforms.apply_all(transforms.inverse(parsed, shape, "float32"), result)
    assert restored.dtype == np.float32
    np.testing.assert_array_equal(restored, array)


@pytest.mark.parametrize("arguments", [
    (-1, 1, 1001), (0, 0, 2), (1, -3, None), (0, -100, 100), (-2, 1, -1), (2, 5, 1000)])
def test_slice_follows_numpy_and_its_shape_rule_agrees(arguments):
    axis, start, stop = arguments
    array = np.random.default_rng(0).standard_normal((3, 4, 1001)).astype("float32")
    stop_text = "1000000" if stop is None else str(stop)
    steps = transforms.parse_all([f"slice({axis}, {start}, {stop_text})"])
    index = [slice(None)] * array.ndim
    index[axis] = slice(start, stop)
    expected = array[tuple(index)]
    result = transforms.apply_all(steps, array)
    np.testing.assert_array_equal(result, expected)
    assert result.flags["C_CONTIGUOUS"]
    assert transforms.output_spec(steps, array.shape, "float32") == (expected.shape, "float32")


def test_slice_drops_slims_background_class_from_kernel_and_bias():
    kernel = np.arange(2 * 1001, dtype="float32").reshape(1, 1, 2, 1001)
    steps = transforms.parse_all(["squeeze(0, 1)", "slice(-1, 1, 1001)"])
    dense = transforms.apply_all(steps, kernel)
    assert dense.shape == (2, 1000) and dense[0, 0] == kernel[0, 0, 0, 1]
    bias = transforms.apply_all(transforms.parse_all(["slice(-1, 1, 1001)"]),
                                np.arange(1001, dtype="float32"))
    assert bias.tolist() == list(range(1, 1001))


@pytest.mark.parametrize("text, shape, message", [
    ("slice(0, 1)", None, "slice takes three integers: axis, start, stop"),
    ("slice(0, 1, 2.5)", None, "slice takes three integers"),
    ("slice(2, 0, 1)", (4, 4), r"slice axis must be in \[-2, 2\)"),
    ("slice(0, 3, 3)", (4, 4), "selects no element of axis 0"),
    ("slice(-1, 5, 9)", (4, 4), "selects no element of axis 1"),
])
def test_slice_refuses_bad_arguments_and_empty_results(text, shape, message):
    with pytest.raises(transforms.TransformError, match=message):
        transforms.output_spec(transforms.parse_all([text]), shape, "float32")


def test_slice_has_no_inverse():
    with pytest.raises(transforms.TransformError, match="slice has no inverse"):
        transforms.inverse(transforms.parse_all(["slice(0, 1, 3)"]), (4,), "float32")
