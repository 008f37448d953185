"""Issue-17 patterns, as TF1 code wrote them: `suggest` drafts, `plan` checks, parity proves.

Each graph of `real_patterns` is saved once per session with its `.meta`; each test drafts a
table unaided, converts with the unedited draft (`convert --verify`) and compares at 1e-5.
"""

import json

import pytest

import migrate
import real_patterns
import verify_graphs

TOLERANCE = 1e-5


@pytest.fixture(scope="session")
def saved(tmp_path_factory):
    """Returns `save(name, build) -> prefix`, saving each graph once per session."""
    prefixes = {}

    def save(name, build):
        if name not in prefixes:
            directory = tmp_path_factory.mktemp(name)
            prefixes[name] = verify_graphs.save_graph(directory, build)
        return prefixes[name]

    return save


def _settings(output_tensor, **kwargs):
    return migrate.VerifySettings(output_tensor=output_tensor, tolerance=TOLERANCE, **kwargs)


def _suggest_and_convert(prefix, factory, settings, tmp_path):
    """Drafts a table, asserts it is proven, converts with it under verification."""
    draft = str(tmp_path / "draft.toml")
    report = migrate.suggest(prefix, factory, output=draft, verify=settings)
    assert report.ok, report.summary()
    assert report.parity.passed and report.parity.max_rel_diff <= TOLERANCE
    converted = migrate.convert(prefix, draft, factory, str(tmp_path / "converted"),
                                options=migrate.ConversionOptions(verify=settings))
    assert converted.verified["passed"], converted.summary()
    return report, converted


@pytest.mark.parametrize("name, output, kernel, bias", [
    ("head_first", "logits:0", ("Variable", "classifier/kernel"),
     ("Variable_1", "classifier/bias")),
    ("named_head_first", "prediction:0", ("inference/weight2", "regression/kernel"),
     ("inference/bias2", "regression/bias")),
])
def test_a_head_created_before_the_rnn_is_matched_by_its_unique_shape(name, output, kernel, bias,
                                                                       saved, tmp_path):
    prefix = saved(name, getattr(real_patterns, f"build_{name}"))
    report, _ = _suggest_and_convert(prefix, getattr(real_patterns, f"{name}_model"),
                                     _settings(output), tmp_path)
    targets = {match["source"]: match["target"] for match in report.matches}
    assert (targets[kernel[0]], targets[bias[0]]) == (kernel[1], bias[1])
    assert report.dropped == []
    # The graph shows where the head is used: dataflow pairs it, whatever its creation order.
    evidence = next(match["evidence"] for match in report.matches if match["source"] == kernel[0])
    assert "dataflow: kind, position and shape agree, no rival" in " ".join(evidence)


def test_a_drop_says_truly_why(saved):
    import keras

    def two_heads():  # Two free [UNITS, CLASSES] kernels: shape cannot choose.
        inputs = keras.Input((real_patterns.STEPS, real_patterns.FEATURES))
        net = keras.layers.LSTM(real_patterns.UNITS, name="lstm")(inputs)
        first = keras.layers.Dense(real_patterns.CLASSES, use_bias=False, name="a")(net)
        second = keras.layers.Dense(real_patterns.CLASSES, use_bias=False, name="b")(net)
        return keras.Model(inputs, keras.layers.Add()([first, second]))

    prefix = saved("head_first", real_patterns.build_head_first)
    report = migrate.suggest(prefix, two_heads)
    assert not report.ok
    # Two heads at the same place of the dataflow: order picks one and says it is not certain;
    # the other stays unfilled, and nothing proves the draft.
    assert ("match = 'Variable'\ntarget = 'a/kernel'" in report.text
            and "order; not certain (decided by order)" in report.text), report.text
    assert "unfilled: b/kernel [6, 4]" in report.summary()
    assert "Variable_1 [4]" in report.summary()
    assert "no target of this kind and shape in the model ([4])" in report.text  # Variable_1.


@pytest.mark.parametrize("strategy", ["div", "mod"])
def test_a_partitioned_embedding_is_drafted_as_its_lookup_reads_it(strategy, saved, tmp_path):
    from migrate.source import lookups

    prefix = saved(f"partitioned_{strategy}", real_patterns.build_partitioned(strategy))
    checkpoint = migrate.LegacyCheckpoint.open(prefix)
    found = lookups.of_checkpoint(checkpoint)
    assert found == {"model/embedding": lookups.PartitionedVariable(
        "model/embedding", real_patterns.PARTITIONS, strategy)}
    settings = _settings("logits:0", input_max=[real_patterns.VOCAB])
    report, _ = _suggest_and_convert(prefix, real_patterns.partitioned_model, settings, tmp_path)
    steps = [str(step) for step in report.table.lookup("model/embedding").rule.transforms]
    assert steps == (["unpartition_mod(3)"] if strategy == "mod" else [])
    assert f"partition_strategy='{strategy}'" in report.text


_EMBEDDING_RULES = """
[[rule]]
match = 'model/embedding'
target = 'embedding/embeddings'
{transform}
[[rule]]
match = 'model/softmax_w'
target = 'softmax/kernel'
[[rule]]
match = 'model/softmax_b'
target = 'softmax/bias'
"""


@pytest.mark.parametrize("strategy, transform, complaint", [
    ("div", "transform = ['unpartition_mod(3)']", "partition_strategy='div'"),
    ("mod", "", "add transform unpartition_mod(3)"),
    ("mod", "transform = ['unpartition_mod(2)']", "gives unpartition_mod(2)"),
])
def test_plan_refuses_a_partition_strategy_the_graph_contradicts(strategy, transform, complaint,
                                                                 saved):
    prefix = saved(f"partitioned_{strategy}", real_patterns.build_partitioned(strategy))
    table = migrate.MappingTable.from_text(_EMBEDDING_RULES.format(transform=transform))
    plan = migrate.plan(prefix, table, real_patterns.partitioned_model)
    (problem,) = plan.problems
    assert (problem.kind, problem.source, problem.target) == (
        "partition", "model/embedding", "embedding/embeddings")
    assert complaint in problem.describe() and "rule 1" in problem.describe()
    right = "transform = ['unpartition_mod(3)']" if strategy == "mod" else ""
    table = migrate.MappingTable.from_text(_EMBEDDING_RULES.format(transform=right))
    assert migrate.plan(prefix, table, real_patterns.partitioned_model).problems == []


def test_a_partitioned_variable_no_lookup_shows_is_settled_by_value(saved, tmp_path):
    from migrate.source import lookups

    prefix = saved("hand_mod_lookup", real_patterns.build_hand_mod_lookup)
    found = lookups.of_checkpoint(migrate.LegacyCheckpoint.open(prefix))
    assert found["model/embedding"].strategy is None
    settings = _settings("logits:0", input_max=[real_patterns.VOCAB])
    report, _ = _suggest_and_convert(prefix, real_patterns.partitioned_model, settings, tmp_path)
    rule = report.table.lookup("model/embedding").rule
    assert [str(step) for step in rule.transforms] == ["unpartition_mod(3)"]
    assert "settled by value" in report.text


def test_a_basic_rnn_cell_stack_is_drafted_with_the_simple_rnn_layout(saved, tmp_path):
    prefix = saved("basic_rnn_stack", real_patterns.build_basic_rnn_stack)
    report, _ = _suggest_and_convert(prefix, real_patterns.basic_rnn_stack_model,
                                     _settings("logits:0"), tmp_path)
    cells = report.table.lookup("rnn/multi_rnn_cell/cell_1/basic_rnn_cell/kernel")
    assert (cells.rule.layout, cells.target) == ("simple_rnn", "rnn_1/simple_rnn_cell")
    assert report.dropped == [] and report.unfilled == []


@pytest.mark.parametrize("name, build, factory, output, source, also", [
    ("tied_autoencoder", real_patterns.build_tied_autoencoder,
     real_patterns.tied_autoencoder_model, "reconstruction:0", "encoder/w1", "decoder_2/kernel"),
    ("square_tied_autoencoder", real_patterns.build_square_tied_autoencoder,
     real_patterns.square_tied_autoencoder_model, "reconstruction:0", "encoder/w",
     "decoder/kernel"),
    ("tied_lm", real_patterns.build_tied_lm, real_patterns.tied_lm_model, "logits:0",
     "embedding", "softmax/kernel"),
    # Looked up 'mod' (unpartition_mod for the Embedding), projected from the parts as saved.
    ("tied_lm_partitioned", real_patterns.build_tied_lm_partitioned, real_patterns.tied_lm_model,
     "logits:0", "embedding", "softmax/kernel"),
])
def test_tied_weights_fill_both_targets_from_one_source(name, build, factory, output, source,
                                                        also, saved, tmp_path):
    prefix = saved(name, build)
    extra = {"input_max": [real_patterns.LM_VOCAB]} if name.startswith("tied_lm") else {}
    report, converted = _suggest_and_convert(prefix, factory, _settings(output, **extra),
                                             tmp_path)
    found = report.table.lookup(source)
    assert [(target, [str(step) for step in steps]) for target, steps in found.also] == [
        (also, ["transpose(1, 0)"])]
    assert "the graph reads this variable transposed" in report.text
    partitioned = name == "tied_lm_partitioned"
    assert [str(step) for step in found.rule.transforms] == (
        ["unpartition_mod(3)"] if partitioned else [])
    # The shared source is counted once: every checkpoint variable is kept, once.
    trainable = converted.roles["trainable"]
    assert trainable["kept"] == trainable["count"]


def test_a_peephole_cell_under_a_custom_scope_stops_suggest_with_one_true_line(saved, tmp_path,
                                                                                cli_in_process):
    prefix = saved("peephole_custom_scope", real_patterns.build_peephole_custom_scope)
    report = migrate.suggest(prefix, real_patterns.peephole_model, verify=_settings("logits:0"))
    assert not report.ok
    assert report.dropped == [] and report.unfilled == []
    (line,) = report.unresolved
    assert line.startswith("plan: unsupported: encoder/rnn/enc/w_f_diag [6]: ")
    assert "encoder/rnn/enc/w_i_diag [6], encoder/rnn/enc/w_o_diag [6]" in line
    assert "peephole connections" in line and "keras.layers.LSTM has no peepholes" in line
    result = cli_in_process("suggest", f"--checkpoint={prefix}",
                            "--model=real_patterns:peephole_model",
                            f"--output={tmp_path / 'draft.toml'}", "--output_tensor=logits:0")
    assert result.returncode == 1, result.stdout + result.stderr
    unresolved = result.stdout.split("unresolved (marked in the draft", 1)[1].splitlines()[1:]
    assert unresolved == [f"  - {line}"]


@pytest.mark.parametrize("names, layout", [
    (("rnn/multi_rnn_cell/cell_0/basic_rnn_cell/kernel",
      "rnn/multi_rnn_cell/cell_0/basic_rnn_cell/bias"), "simple_rnn"),
    (("rnn/multi_rnn_cell/cell_0/basic_rnn_cell/weights",
      "rnn/multi_rnn_cell/cell_0/basic_rnn_cell/biases"), "simple_rnn_legacy_names"),
    (("RNN/MultiRNNCell/Cell0/BasicRNNCell/Linear/Matrix",
      "RNN/MultiRNNCell/Cell0/BasicRNNCell/Linear/Bias"), "simple_rnn_linear_names"),
    (("RNN/MultiRNNCell/Cell0/BasicLSTMCell/Linear/Matrix",
      "RNN/MultiRNNCell/Cell0/BasicLSTMCell/Linear/Bias"), "lstm_linear_names"),
])
def test_basic_rnn_cells_are_recognised_under_every_naming(names, layout):
    from migrate.source.checkpoint import SourceVariable
    from migrate.source.roles import Role
    from migrate.source.roles import RoleSource
    from migrate.suggest import items

    shapes = ((9, 6), (6,))
    variables = [SourceVariable(name, shape, "float32", Role.TRAINABLE, RoleSource.GRAPH, "t")
                 for name, shape in zip(names, shapes)]
    (item,) = items.source_items(variables, order=names)
    assert (item.layout, item.name) == (layout, names[0].rsplit("/", 2 if "Linear" in names[0]
                                                                else 1)[0])


def test_tied_weights_the_graph_does_not_show_are_confirmed_by_value(saved, tmp_path):
    prefix = saved("tied_lm_einsum", real_patterns.build_tied_lm_einsum)
    settings = _settings("logits:0", input_max=[real_patterns.LM_VOCAB])
    report, _ = _suggest_and_convert(prefix, real_patterns.tied_lm_model, settings, tmp_path)
    assert [target for target, _ in report.table.lookup("embedding").also] == ["softmax/kernel"]
    assert "confirmed by value: the outputs match" in report.text
    # Without parity to run, nothing confirms the tie: the target stays unfilled, and says so.
    unproven = migrate.suggest(prefix, real_patterns.tied_lm_model)
    assert unproven.unfilled == [("softmax/kernel", (real_patterns.LM_EMBED,
                                                     real_patterns.LM_VOCAB))]
    assert "softmax/kernel [5, 13] may be embedding transposed (tied weights)" in unproven.text


def test_the_tied_lm_draft_converts_on_the_command_line(saved, tmp_path, cli_in_process):
    prefix = saved("tied_lm", real_patterns.build_tied_lm)
    draft = tmp_path / "draft.toml"
    flags = ["--model=real_patterns:tied_lm_model", "--output_tensor=logits:0",
             f"--input_max={real_patterns.LM_VOCAB}", f"--checkpoint={prefix}"]
    suggested = cli_in_process("suggest", *flags, f"--output={draft}")
    assert suggested.returncode == 0, suggested.stdout + suggested.stderr
    assert "also = [{target = 'softmax/kernel', transform = ['transpose(1, 0)']}]" in \
        draft.read_text()
    converted = cli_in_process("convert", *flags, f"--table={draft}", "--verify",
                               f"--output={tmp_path / 'converted'}")
    assert converted.returncode == 0, converted.stdout + converted.stderr
    assert "verified: PASS" in converted.stdout


def test_a_tf0x_basic_lstm_cell_stack_is_drafted_and_proven_on_the_command_line(
        saved, tmp_path, cli_in_process):
    # TF 0.x's own names (`RNN/MultiRNNCell/Cell0/BasicLSTMCell/Linear/Matrix`), a static
    # unroll, and the forget bias read from the graph: no flag beyond the tensor names.
    prefix = saved("tf0x_lstm_stack", real_patterns.build_tf0x_lstm_stack)
    report = migrate.suggest(prefix, real_patterns.tf0x_lstm_stack_model,
                             output=str(tmp_path / "draft.toml"), verify=_settings("logits:0"))
    assert report.ok and report.parity.max_rel_diff <= TOLERANCE, report.summary()
    cell = report.table.lookup("RNN/MultiRNNCell/Cell2/BasicLSTMCell/Linear/Matrix")
    assert (cell.rule.layout, cell.target) == ("lstm_linear_names", "lstm_2/lstm_cell")
    assert report.dropped == [] and report.unfilled == []
    result = cli_in_process("convert", f"--checkpoint={prefix}", f"--table={report.output}",
                            "--model=real_patterns:tf0x_lstm_stack_model",
                            f"--output={tmp_path / 'converted'}", "--verify",
                            "--output_tensor=logits:0", f"--tolerance={TOLERANCE}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "verified: PASS" in result.stdout, result.stdout


def test_one_cell_for_both_directions_fills_the_bidirectional_layer(saved, tmp_path,
                                                                    cli_in_process):
    # bidirectional_dynamic_rnn(cell, cell, ...): only `encoder/fw/lstm_cell/*` exist.
    prefix = saved("shared_cell_seq2seq", real_patterns.build_shared_cell_seq2seq)
    report = migrate.suggest(prefix, real_patterns.shared_cell_seq2seq_model,
                             output=str(tmp_path / "draft.toml"), verify=_settings("logits:0"))
    assert report.ok and report.parity.max_rel_diff <= TOLERANCE, report.summary()
    cell = report.table.lookup("encoder/fw/lstm_cell/kernel")
    assert (cell.rule.layout, cell.target) == ("lstm", "encoder/forward_lstm/lstm_cell")
    assert cell.also == (("encoder/backward_lstm/lstm_cell", ()),)
    assert "shared cell: the graph runs it in 2 loops" in report.text
    assert report.dropped == [] and report.unfilled == []
    result = cli_in_process("convert", f"--checkpoint={prefix}", f"--table={report.output}",
                            "--model=real_patterns:shared_cell_seq2seq_model",
                            f"--output={tmp_path / 'converted'}", "--verify",
                            "--output_tensor=logits:0", f"--tolerance={TOLERANCE}")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "verified: PASS" in result.stdout, result.stdout
    # The trainable variables are the cell, the decoder's and the projection's, each kept once.
    assert "trainable               6      6" in result.stdout, result.stdout
    # The encoder returns its states too: it is compared on its sequence, both directions merged.
    result = cli_in_process("verify", f"--checkpoint={prefix}",
                            "--model=real_patterns:shared_cell_seq2seq_model",
                            f"--converted={tmp_path / 'converted'}", "--output_tensor=logits:0",
                            "--layers", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    encoder = json.loads(result.stdout)["layers"][0]
    assert encoder["layer"] == "encoder" and encoder["max_rel_diff"] <= TOLERANCE, encoder
    assert encoder["legacy_tensor"].startswith("concat(encoder/fw/"), encoder
