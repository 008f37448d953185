"""suggest matches by dataflow: GPT-2 into keras-hub, misleading names, shuffled creation order."""

import json

import migrate
import suggest_models
import verify_graphs
from legacy_graphs import gpt2

GPT2_SETTINGS = dict(output_tensor=gpt2.OUTPUT_TENSOR,
                     input_pairs=[("token_ids", gpt2.INPUT_TENSOR)],
                     keras_feeds=[("padding_mask", 1)], input_shapes=[gpt2.INPUT_SHAPE],
                     input_max=[gpt2.INPUT_MAX])


def test_gpt2_is_drafted_unaided_into_keras_hub_and_proven(tmp_path):
    (tmp_path / "gpt2").mkdir()
    prefix = verify_graphs.save_graph(tmp_path / "gpt2", gpt2.define_graph)
    settings = migrate.VerifySettings(**GPT2_SETTINGS)
    draft = tmp_path / "draft.toml"
    report = migrate.suggest(prefix, suggest_models.gpt2_backbone, verify=settings,
                             output=str(draft))
    assert report.ok and report.parity.passed, report.summary()
    assert report.dropped == [] and report.unfilled == []
    split = [rule for rule in report.table.rules if rule.layout == "split"]
    assert len(split) == 4  # c_attn w and b of both blocks, sizes from the graph's tf.split.
    assert report.decided_by["dataflow"] >= 24
    projection = report.table.lookup("model/h0/attn/c_proj/w")
    assert projection.target == "transformer_layer_0/self_attention/attention_output/kernel"
    assert [str(step) for step in projection.rule.transforms] == ["reshape(2, 8, 16)"]
    # The unedited draft converts and proves.
    output = tmp_path / "converted"
    migrate.convert(prefix, str(draft), suggest_models.gpt2_backbone(), str(output),
                    options=migrate.ConversionOptions(verify=settings))
    with open(output / "manifest.json", encoding="utf-8") as file:
        verified = json.load(file)["verified"]
    assert verified["passed"] and verified["max_rel_diff"] <= 1e-5


# Three same-shape dense layers: created last to first, scopes named against the data's order.
def _build_misleading():
    tf = verify_graphs.tf_v1()
    inputs = tf.placeholder(tf.float32, [None, 4], name="inputs")
    variables = {}
    for scope in ("fc1", "fc2", "fc3"):  # fc1 is applied last.
        with tf.variable_scope(scope):
            variables[scope] = (tf.get_variable("kernel", [4, 4]), tf.get_variable("bias", [4]))
    net = inputs
    for scope in ("fc3", "fc2", "fc1"):
        kernel, bias = variables[scope]
        net = tf.tanh(tf.matmul(net, kernel) + bias)
    tf.identity(net, name="outputs")


def _plain_model():
    import keras
    keras.backend.clear_session()
    inputs = keras.Input((4,), name="inputs")
    net = inputs
    for name in ("fc1", "fc2", "fc3"):
        net = keras.layers.Dense(4, activation="tanh", name=name)(net)
    return keras.Model(inputs, net)


def test_misleading_names_and_creation_order_get_no_wrong_pair_marked_certain(tmp_path):
    prefix = verify_graphs.save_graph(tmp_path, _build_misleading)
    truth = {f"{source}/{leaf}": f"{target}/{leaf}" for source, target in
             (("fc3", "fc1"), ("fc2", "fc2"), ("fc1", "fc3")) for leaf in ("kernel", "bias")}
    report = migrate.suggest(prefix, _plain_model)  # No parity: certainty is the graph's alone.
    wrong = [match for match in report.matches
             if match["certain"] and truth[match["source"]] != match["target"]]
    assert wrong == []
    assert all(truth[match["source"]] == match["target"] for match in report.matches)
    assert report.decided_by["dataflow"] == 6
    settings = migrate.VerifySettings(output_tensor="outputs:0")
    assert migrate.suggest(prefix, _plain_model, verify=settings).parity.passed
