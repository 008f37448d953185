"""`suggest` drafts what names alone miss: Keras 3 depthwise kernels, slim's 1001 classes,
and the target weights a model sets itself; verification compares logits without class 0."""

import os
import re

import numpy as np
import pytest

import migrate
from migrate.mapping import class_axis
from migrate.planning.target import TargetWeight
from migrate.source.checkpoint import SourceVariable
from migrate.source.roles import Role
from migrate.source.roles import RoleSource
from migrate.suggest import align
from migrate.suggest import items


def _variable(name, shape):
    return SourceVariable(name, tuple(shape), "float32", Role.TRAINABLE, RoleSource.NAME_RULE,
                          "stand-in")


def _target(path, shape):
    return TargetWeight(path, tuple(shape), "float32", True)


def test_slim_mobilenet_v2_1001_classes_drafted_unaided_and_proven(legacy_checkpoint, tmp_path,
                                                                     cli_in_process):
    """docs/targets.md's MobileNetV2 commands, run as printed (the build is the session's)."""
    import shlex
    import shutil

    import docs_text

    runner = ("tests/test_suggest_entries.py::"
              "test_slim_mobilenet_v2_1001_classes_drafted_unaided_and_proven")
    (block,) = [block for block in docs_text.blocks(docs_text.page("targets"))
                if block.runner == runner]
    build, *commands = [shlex.split(command.line) for command in docs_text.commands(block.body)]
    assert build == ["python", "-m", "legacy_graphs", "mobilenet_v2", "--output_dir=mobilenet"]
    shutil.copytree(os.path.dirname(legacy_checkpoint("mobilenet_v2")), tmp_path / "mobilenet")
    assert [command[3] for command in commands] == ["inspect", "suggest", "convert"]
    printed = []
    for command in commands:
        result = cli_in_process(*command[3:], cwd=str(tmp_path))
        assert result.returncode == 0, (command, result.stdout, result.stderr)
        printed.append(result.stdout)
    inspected, suggested, converted = printed
    assert "candidate outputs (for --output_tensor):" in inspected and "logits:0" in inspected
    assert "0 source variable(s) dropped, 0 target weight(s) unfilled" in suggested, suggested
    assert "compared without the background class 0" in suggested
    table = migrate.MappingTable.load(str(tmp_path / "mobilenet.toml"))
    # Keras 3's DepthwiseConv2D calls its weight `kernel`: the layer's class says what it is.
    depthwise = table.lookup("MobilenetV2/expanded_conv_3/depthwise/depthwise_weights")
    assert depthwise.target == "block_3_depthwise/kernel"
    logits = table.lookup("MobilenetV2/Logits/Conv2d_1c_1x1/weights").rule
    assert [str(step) for step in logits.transforms] == ["squeeze(0, 1)", class_axis.SLICE]
    bias = table.lookup("MobilenetV2/Logits/Conv2d_1c_1x1/biases").rule
    assert [str(step) for step in bias.transforms] == [class_axis.SLICE]
    assert "verified: PASS" in converted and "background class 0" in converted, converted


def test_a_keras_3_depthwise_kernel_has_the_depthwise_kind_by_its_layer_class():
    sources = items.source_items([_variable("net/depthwise/depthwise_weights", (3, 3, 8, 1)),
                                  _variable("net/conv/weights", (1, 1, 8, 16))], order=())
    weights = [_target("conv_dw_1/kernel", (3, 3, 8, 1)),
               _target("conv_pw_1/kernel", (1, 1, 8, 16))]
    classes = {"conv_dw_1/kernel": "DepthwiseConv2D", "conv_pw_1/kernel": "Conv2D"}
    targets = items.target_items(weights, lambda weight: True, layer_classes=classes)
    assert [(target.kind, target.layer_class) for target in targets] == [
        ("depthwise_kernel", "DepthwiseConv2D"), ("kernel", "Conv2D")]
    matches, unmatched_sources, unmatched_targets = align.align(sources, targets)
    assert sorted((match.source.name, match.target.name) for match in matches) == [
        ("net/conv/weights", "conv_pw_1/kernel"),
        ("net/depthwise/depthwise_weights", "conv_dw_1/kernel")]
    assert unmatched_sources == unmatched_targets == []


def test_layer_classes_name_the_innermost_layer_owning_each_weight():
    import keras

    from migrate.planning.target import weight_path

    inputs = keras.Input((8, 8, 4))
    hidden = keras.layers.DepthwiseConv2D(3, name="dw")(inputs)
    outputs = keras.layers.Dense(2, name="head")(keras.layers.Flatten()(hidden))
    model = keras.Model(inputs, outputs)
    classes = items.layer_classes(model, weight_path)
    assert classes["dw/kernel"] == "DepthwiseConv2D" and classes["head/bias"] == "Dense"


def test_1001_classes_fill_1000_with_the_slice_and_nothing_else_does():
    sources = items.source_items([_variable("logits/weights", (1, 1, 6, 1001)),
                                  _variable("logits/biases", (1001,)),
                                  _variable("other/gamma", (1001,))], order=())
    targets = items.target_items([_target("predictions/kernel", (6, 1000)),
                                  _target("predictions/bias", (1000,)),
                                  _target("bn/gamma", (1000,))], lambda weight: True)
    found = {(match.source.name, match.target.name): match.transforms
             for match in align.align(sources, targets)[0]}
    assert found == {("logits/weights", "predictions/kernel"): ("squeeze(0, 1)", class_axis.SLICE),
                     ("logits/biases", "predictions/bias"): (class_axis.SLICE,)}


@pytest.mark.parametrize("legacy_shape, keras_shape, compared", [
    ((2, 1001), (2, 1000), (2, 1000)), ((2, 1, 1, 1001), (2, 1000), (2, 1000)),
    ((2, 1001), (2, 999), None), ((3, 1001), (2, 1000), None), ((2, 1000), (2, 1000), None)])
def test_legacy_logits_are_compared_without_the_background_class(legacy_shape, keras_shape,
                                                                 compared):
    legacy = np.arange(np.prod(legacy_shape), dtype="float32").reshape(legacy_shape)
    kept, note = class_axis.without_background_class(legacy, np.zeros(keras_shape))
    if compared is None:
        assert note is None and kept.shape == legacy_shape
        return
    assert "background class 0" in note and f"legacy {list(legacy_shape)}" in note
    np.testing.assert_array_equal(kept.reshape(compared), legacy.reshape(compared[0], -1)[:, 1:])


def _table(text):
    return migrate.MappingTable.from_text(text)


LEAVE_NORMALIZATION = """
[[rule]]
match = 'fc/(kernel|bias)'
target = 'dense/\\1'

[[rule]]
leave = 'normalization/(mean|variance|count)'
reason = 'preprocessing statistics'
"""


def test_a_leave_rule_names_keras_weights_with_its_reason_and_never_a_tf1_name():
    table = _table(LEAVE_NORMALIZATION)
    rule = table.left_as_built("normalization/variance")
    assert (rule.index, rule.leave, rule.reason) == (2, True, "preprocessing statistics")
    assert rule.describe() == "rule 2 (leave 'normalization/(mean|variance|count)')"
    assert table.left_as_built("dense/kernel") is None
    assert table.lookup("normalization/mean") is None  # TF1 names never reach it.


@pytest.mark.parametrize("entry, message", [
    ("leave = 'norm/mean'", "`leave` needs `reason`"),
    ("leave = 'norm/mean'\nreason = '  '", "`leave` needs `reason`"),
    ("leave = 'norm/mean'\nreason = 'stats'\ntarget = 'x'", "has unknown key(s) ['target']"),
    ("leave = ''\nreason = 'stats'", "Received: leave=''"),
    ("leave = 'norm/(mean'\nreason = 'stats'", "is not a valid regex"),
    ("target = 'x'", "needs `match` (or `leave`"),
])
def test_a_bad_leave_rule_is_refused_when_the_table_is_read(entry, message):
    with pytest.raises(migrate.TableError, match=re.escape(message)):
        _table(f"[[rule]]\n{entry}\n")


def _plan(table, keep="model_state"):
    from migrate.planning.plan import make_plan

    variables = {name: _variable(name, shape) for name, shape in (("fc/kernel", (4, 2)),
                                                                 ("fc/bias", (2,)))}
    targets = {path: TargetWeight(path, shape, "float32", trainable) for path, shape, trainable in (
        ("normalization/mean", (3,), False), ("normalization/variance", (3,), False),
        ("normalization/count", (), False), ("dense/kernel", (4, 2), True),
        ("dense/bias", (2,), True))}
    return make_plan(variables, table, targets, keep=keep)


def test_the_plan_counts_the_weights_left_as_built_and_neither_fills_nor_warns_of_them():
    plan = _plan(_table(LEAVE_NORMALIZATION))
    assert plan.problems == []
    assert sorted(weight.path for weight, _ in plan.left_as_built) == [
        "normalization/count", "normalization/mean", "normalization/variance"]
    assert {rule.reason for _, rule in plan.left_as_built} == {"preprocessing statistics"}
    assert plan.unwritten_targets == [] and sorted(plan.target_paths) == [
        "dense/bias", "dense/kernel"]
    # Without the rule, the same weights are unfilled.
    problems = _plan(_table(LEAVE_NORMALIZATION.split("[[rule]]\nleave")[0])).problems
    assert [problem.kind for problem in problems] == ["unfilled"] * 3


def test_a_leave_rule_on_a_filled_weight_or_on_no_weight_is_a_plan_problem():
    filled = _plan(_table(LEAVE_NORMALIZATION + "\n[[rule]]\nleave = 'dense/bias'\n"
                                                "reason = 'set by the model'\n"))
    assert [(problem.kind, problem.target) for problem in filled.problems] == [
        ("collision", "dense/bias")]
    assert "rule 3 (leave 'dense/bias') leaves it as the model built it, but fc/bias" in \
        filled.problems[0].message
    typo = _plan(_table(LEAVE_NORMALIZATION + "\n[[rule]]\nleave = 'pooler/.*'\n"
                                              "reason = 'never had one'\n"))
    assert [problem.kind for problem in typo.problems] == ["no such target"]
    assert "rule 3 (leave 'pooler/.*') leaves no weight" in typo.problems[0].message


def test_lint_does_not_call_a_leave_rule_unused_for_the_checkpoint_names(tmp_path):
    from migrate.mapping.lint import lint_table

    path = tmp_path / "table.toml"
    path.write_text(LEAVE_NORMALIZATION)
    report = lint_table(str(path), names=["fc/kernel", "fc/bias"])
    assert report.ok and report.warnings == []


def _small_convnet_body(keras, inputs):
    net = keras.layers.Conv2D(4, 3, padding="same", use_bias=False, name="conv")(inputs)
    net = keras.layers.BatchNormalization(epsilon=1e-3, name="bn")(net)
    net = keras.layers.ReLU(name="relu")(net)
    net = keras.layers.MaxPooling2D(2, 2, name="pool")(net)
    return keras.layers.Flatten(name="flatten")(net)


def _normalized_convnet():
    """As keras.applications' EfficientNet starts: a `Normalization` no TF1 variable fills."""
    import keras

    from legacy_graphs import small_convnet as legacy

    inputs = keras.Input(legacy.INPUT_SHAPE, name="images")
    net = keras.layers.Normalization(axis=-1, name="normalization")(inputs)
    logits = keras.layers.Dense(legacy.NUM_CLASSES, name="logits")(_small_convnet_body(keras, net))
    return keras.Model(inputs, logits)


def _convnet_with_pooler():
    """A second output (a pooler) the legacy model never had."""
    import keras

    from legacy_graphs import small_convnet as legacy

    inputs = keras.Input(legacy.INPUT_SHAPE, name="images")
    flat = _small_convnet_body(keras, inputs)
    return keras.Model(inputs, {
        "logits": keras.layers.Dense(legacy.NUM_CLASSES, name="logits")(flat),
        "pooled": keras.layers.Dense(3, activation="tanh", name="pooler")(flat)})


def _convnet_with_an_extra_layer():
    """A layer the legacy model never had, on the path to the compared output."""
    import keras

    from legacy_graphs import small_convnet as legacy

    inputs = keras.Input(legacy.INPUT_SHAPE, name="images")
    logits = keras.layers.Dense(legacy.NUM_CLASSES, name="logits")(
        _small_convnet_body(keras, inputs))
    return keras.Model(inputs, keras.layers.Dense(legacy.NUM_CLASSES, name="extra")(logits))


def _small_convnet_settings(output="logits/BiasAdd:0"):
    from legacy_graphs import small_convnet as legacy
    from migrate.verification.parity import settings_from_arguments

    return settings_from_arguments(input_tensor=legacy.INPUT_TENSOR, output_tensor=output)


def test_suggest_leaves_normalization_statistics_as_built_and_the_draft_converts(
        legacy_checkpoint, tmp_path):
    prefix = legacy_checkpoint("small_convnet")
    draft = str(tmp_path / "draft.toml")
    options = migrate.ConversionOptions(keep="model_state")
    report = migrate.suggest(prefix, _normalized_convnet, output=draft, options=options,
                             verify=_small_convnet_settings())
    assert report.ok and report.unfilled == [], report.summary()
    assert [(path, shape) for path, shape, _ in report.left_as_built] == [
        ("normalization/mean", (3,)), ("normalization/variance", (3,)),
        ("normalization/count", ())]
    assert "leave = 'normalization/(mean|variance|count)'" in report.text
    assert "3 left as the model built them" in report.summary()
    assert report.to_json()["left_as_built"][0][2].startswith("preprocessing statistics")
    converted = migrate.convert(prefix, draft, _normalized_convnet, str(tmp_path / "converted"),
                                options=migrate.ConversionOptions(
                                    keep="model_state", verify=_small_convnet_settings()))
    assert converted.verified["passed"] and converted.unwritten_targets == []
    assert [path for path, _ in converted.left_as_built] == [
        "normalization/count", "normalization/mean", "normalization/variance"]
    assert "left as the model built them (leave rules): 3 weight(s)" in converted.summary()


def test_a_layer_no_source_can_fill_is_left_only_when_the_compared_outputs_match(
        legacy_checkpoint):
    prefix = legacy_checkpoint("small_convnet")
    options = migrate.ConversionOptions(keep="model_state")
    proven = migrate.suggest(prefix, _convnet_with_pooler, options=options,
                             verify=_small_convnet_settings("logits=logits/BiasAdd:0"))
    assert proven.ok and proven.unfilled == [], proven.summary()
    assert [path for path, _, _ in proven.left_as_built] == ["pooler/kernel", "pooler/bias"]
    assert "leave = 'pooler/(kernel|bias)'" in proven.text
    assert "a layer the legacy model never had" in proven.text
    # Without parity nothing says the outputs do without it: unfilled, with the way out.
    unproven = migrate.suggest(prefix, _convnet_with_pooler, options=options)
    assert not unproven.ok and unproven.left_as_built == []
    assert [path for path, _ in unproven.unfilled] == ["pooler/kernel", "pooler/bias"]
    assert "`leave = 'PATH'`" in unproven.text


def test_keras_applications_efficientnet_has_its_normalization_left_and_depthwise_kernels_kinded():
    import keras

    from migrate.planning import target as target_model
    from migrate.suggest import model_sets

    model = keras.applications.EfficientNetB0(weights=None, input_shape=(32, 32, 3))
    targets = items.target_items(
        [weight for weight, _ in target_model.weights(model).values()], lambda weight: True,
        layer_classes=items.layer_classes(model, target_model.weight_path))
    left = model_sets.preprocessing(targets)
    assert [item.target.name for item in left] == [
        "normalization/mean", "normalization/variance", "normalization/count"]
    assert all(item.certain and item.reason.startswith("preprocessing statistics")
               for item in left)
    depthwise = [target for target in targets if target.layer_class == "DepthwiseConv2D"]
    assert len(depthwise) == 16 and {target.kind for target in depthwise} == {"depthwise_kernel"}


def test_a_layer_no_source_fills_on_the_compared_path_stays_unfilled(legacy_checkpoint):
    prefix = legacy_checkpoint("small_convnet")
    report = migrate.suggest(prefix, _convnet_with_an_extra_layer,
                             options=migrate.ConversionOptions(keep="model_state"),
                             verify=_small_convnet_settings())
    assert not report.ok and report.left_as_built == [] and "\nleave = " not in report.text
    assert not report.parity.passed  # Run with the layer as built: the outputs need it.
    assert [path for path, _ in report.unfilled] == ["extra/kernel", "extra/bias"]
    assert "unfilled: extra/kernel [5, 5]: no source variable fills this target weight" in \
        report.plan_problems
