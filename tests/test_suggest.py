"""`migrate.suggest` drafts tables that plan clean and pass parity against real legacy graphs."""

import pytest

import migrate
from migrate import zoo

FAST_ENTRIES = ("small_convnet", "lstm_language_model", "gru_classifier", "bilstm_tagger",
                "bert_encoder")


def _settings(arguments):
    """The `VerifySettings` of `migrate.verify`'s keyword arguments (a zoo entry's `verify`)."""
    from migrate.verification.parity import settings_from_arguments

    return settings_from_arguments(**arguments)


def _keep(model):
    return "model_state" if model.non_trainable_weights else "trainable"


def _assert_draft_converts(prefix, draft, build_model, keep, verify_settings, tmp_path):
    """Converts with the unedited draft (read back from its file), proving parity as it converts:
    the output is restored into a fresh model and compared with the legacy graph."""
    settings = _settings(verify_settings)
    report = migrate.convert(prefix, draft, build_model, str(tmp_path / "converted"),
                             options=migrate.ConversionOptions(keep=keep, verify=settings))
    assert report.unwritten_targets == [], report.unwritten_targets  # Every weight restored.
    assert report.verified["passed"], report.summary()
    assert report.verified["max_rel_diff"] <= settings.tolerance, report.summary()


@pytest.mark.parametrize("name", FAST_ENTRIES)
def test_suggest_drafts_a_table_for_every_zoo_entry(name, legacy_checkpoint, tmp_path):
    entry = zoo.get(name)
    prefix = legacy_checkpoint(name)
    keep = _keep(entry.build_model())
    draft = str(tmp_path / "draft.toml")
    report = migrate.suggest(prefix, entry.build_model, output=draft,
                             options=migrate.ConversionOptions(keep=keep),
                             verify=_settings(entry.verify))
    assert report.ok, report.summary()
    assert report.parity.passed and report.unresolved == []
    assert report.unfilled == []
    _assert_draft_converts(prefix, draft, entry.build_model, keep, entry.verify, tmp_path)


def test_suggest_folds_repeats_and_recognises_layouts(legacy_checkpoint):
    entry = zoo.get("lstm_language_model")
    report = migrate.suggest(legacy_checkpoint("lstm_language_model"), entry.build_model)
    rules = {rule.match: rule for rule in report.table.rules}
    cells = rules[r"lm/rnn/multi_rnn_cell/cell_(\d+)/lstm_cell"]
    assert (cells.layout, cells.target) == ("lstm", r"lstm_\1/lstm_cell")
    assert "forget_bias" not in report.text  # The graph gives it; the draft leaves it out.
    assert [str(step) for step in rules["lm/embedding"].transforms] == ["unpartition_mod(3)"]
    # Without verify settings, parity cannot run, and the report says so.
    assert report.parity is None and "output tensor" in report.parity_note
    assert report.ok, report.summary()


def test_suggest_drops_the_bert_pooler_and_lists_it(legacy_checkpoint):
    entry = zoo.get("bert_encoder")
    report = migrate.suggest(legacy_checkpoint("bert_encoder"), entry.build_model,
                             verify=_settings(entry.verify))
    assert [name for name, _ in report.dropped] == ["bert/pooler/dense/kernel",
                                                    "bert/pooler/dense/bias"]
    assert "match = 'bert/pooler/.*'\ndrop = true" in report.text
    assert "bert/pooler/dense/kernel [32, 32]" in report.summary()
    attention = [rule for rule in report.table.rules if rule.layout == "bert_attention"]
    assert [rule.match for rule in attention] == [r"bert/encoder/layer_(\d+)/attention"]


@pytest.mark.slow
def test_suggest_resnet_v1_50_zoo_entry(legacy_checkpoint, tmp_path):
    entry = zoo.get("resnet_v1_50")
    prefix = legacy_checkpoint("resnet_v1_50")
    draft = str(tmp_path / "draft.toml")
    report = migrate.suggest(prefix, entry.build_model, output=draft,
                             options=migrate.ConversionOptions(keep="model_state"),
                             verify=_settings(entry.verify))
    assert report.ok, report.summary()
    _assert_draft_converts(prefix, draft, entry.build_model, "model_state", entry.verify, tmp_path)


@pytest.mark.slow
def test_suggest_vgg_16_into_keras_applications(legacy_checkpoint, tmp_path):
    from migrate.zoo import vgg_16

    entry = zoo.get("vgg_16")
    prefix = legacy_checkpoint("vgg_16", extra_flags=("--config=tiny",))
    draft = str(tmp_path / "draft.toml")
    settings = dict(entry.verify, batch_size=1)
    report = migrate.suggest(prefix, vgg_16.build_tiny_model, output=draft,
                             verify=_settings(settings))
    assert report.ok, report.summary()
    fc6 = report.table.lookup("vgg_16/fc6/weights")
    assert fc6.target == "fc1/kernel"
    assert [str(step) for step in fc6.rule.transforms] == ["reshape(-1, 4096)"]
    assert [str(step) for step in report.table.lookup("vgg_16/fc8/weights").rule.transforms] == \
        ["squeeze(0, 1)"]
    _assert_draft_converts(prefix, draft, vgg_16.build_tiny_model, "trainable", settings, tmp_path)


def _inception_v3():
    import keras

    from legacy_graphs import inception_v3

    # keras.applications names layers by process-wide counters (conv2d_57); a
    # fresh session gives every build the names a new process would.
    keras.backend.clear_session()
    return keras.applications.InceptionV3(
        weights=None, input_shape=inception_v3.INPUT_SHAPE, classes=inception_v3.NUM_CLASSES,
        classifier_activation=None)


@pytest.mark.slow
def test_suggest_inception_v3_into_keras_applications(legacy_checkpoint, tmp_path):
    from legacy_graphs import inception_v3

    prefix = legacy_checkpoint("inception_v3")
    draft = str(tmp_path / "draft.toml")
    settings = {"input_tensor": inception_v3.INPUT_TENSOR,
                "output_tensor": inception_v3.OUTPUT_TENSOR, "tolerance": 1e-5}
    report = migrate.suggest(prefix, _inception_v3, output=draft,
                             options=migrate.ConversionOptions(keep="model_state"),
                             verify=_settings(settings))
    assert report.ok, report.summary()
    # Keras names its layers by counters; only the alignment can produce these targets.
    assert report.table.lookup("InceptionV3/Mixed_7c/Branch_3/Conv2d_0b_1x1/weights").target == \
        "conv2d_93/kernel"
    # The auxiliary head has no place in the Keras model: dropped, listed, in one rule.
    assert all(name.startswith("InceptionV3/AuxLogits/") for name, _ in report.dropped)
    assert "match = 'InceptionV3/AuxLogits/.*'\ndrop = true" in report.text
    # Parallel branches with the same shapes were decided by order and settled by parity.
    assert report.settled and report.ambiguous == []
    _assert_draft_converts(prefix, draft, _inception_v3, "model_state", settings, tmp_path)


def _two_branch_model(*, reverse):
    """The Keras twin of legacy_graphs.two_branch_convnet, its branches built in either order."""
    import keras

    from legacy_graphs import two_branch_convnet as legacy

    images = keras.Input(legacy.INPUT_SHAPE)
    layers = [keras.layers.Conv2D(legacy.BRANCH_FILTERS, 3, padding="same", activation="relu")
              for _ in range(2)]
    branches = [layer(images) for layer in (layers[::-1] if reverse else layers)]
    if reverse:
        branches = branches[::-1]  # Built b first, concatenated a, b as the graph does.
    net = keras.layers.Concatenate()(branches)
    net = keras.layers.Flatten()(net)
    return keras.Model(images, keras.layers.Dense(legacy.NUM_CLASSES)(net))


def _two_branch_settings():
    from legacy_graphs import two_branch_convnet as legacy

    return {"input_tensor": legacy.INPUT_TENSOR, "output_tensor": legacy.OUTPUT_TENSOR}


def test_parallel_same_shape_branches_in_graph_order_are_settled_by_value(legacy_checkpoint):
    prefix = legacy_checkpoint("two_branch_convnet")
    report = migrate.suggest(prefix, lambda: _two_branch_model(reverse=False),
                             verify=_settings(_two_branch_settings()))
    assert report.ok, report.summary()
    assert [[source for source, _ in group] for group in report.settled] == [
        ["branch_a", "branch_b"]]


def test_parallel_branches_built_in_the_other_order_are_settled_by_value(legacy_checkpoint,
                                                                         tmp_path):
    import keras

    def fresh_model():
        keras.backend.clear_session()  # The same counter names for suggest and convert.
        return _two_branch_model(reverse=True)

    prefix = legacy_checkpoint("two_branch_convnet")
    draft = tmp_path / "draft.toml"
    report = migrate.suggest(prefix, fresh_model, output=str(draft),
                             verify=_settings(_two_branch_settings()))
    assert report.ok, report.summary()
    assert report.parity.passed and report.ambiguous == []
    ((first, first_target), (second, second_target)), = report.settled
    assert (first, second) == ("branch_a", "branch_b")
    # Order matched branch_a with the convolution built first; the values chose the other one.
    chosen = {match["source"]: match for match in report.matches}
    assert "chosen by value comparison" in chosen["branch_a/kernel"]["evidence"]
    assert chosen["branch_a/kernel"]["target"] == second_target + "/kernel"
    _assert_draft_converts(prefix, str(draft), fresh_model, "trainable",
                           dict(_two_branch_settings(), tolerance=1e-5), tmp_path)


def test_parallel_branches_are_reported_ambiguous_when_the_graph_cannot_run(legacy_checkpoint,
                                                                            tmp_path):
    prefix = legacy_checkpoint("two_branch_convnet")
    draft = tmp_path / "draft.toml"
    report = migrate.suggest(prefix, lambda: _two_branch_model(reverse=True), output=str(draft))
    assert not report.ok
    assert report.parity is None and "output tensor" in report.parity_note
    assert [[source for source, _ in group] for group in report.ambiguous] == [
        ["branch_a", "branch_b"]]
    assert any(line.startswith("ambiguous: branch_a -> ") for line in report.unresolved)
    text = draft.read_text()  # Written anyway, for the user to edit, with the entries marked.
    assert "AMBIGUOUS" in text
    # Keras named these convolutions by its counters; the header says how to reuse the table.
    assert "keras.backend.clear_session()" in text
    assert "AMBIGUOUS" in report.summary()


def test_without_a_value_comparison_a_failing_parity_leaves_them_ambiguous(legacy_checkpoint,
                                                                           tmp_path):
    prefix = legacy_checkpoint("two_branch_convnet")
    draft = tmp_path / "draft.toml"
    report = migrate.suggest(prefix, lambda: _two_branch_model(reverse=True), output=str(draft),
                             verify=_settings(_two_branch_settings()), resolve_ambiguous=None)
    assert not report.ok and not report.parity.passed
    assert [[source for source, _ in group] for group in report.ambiguous] == [
        ["branch_a", "branch_b"]]
    assert "UNRESOLVED: parity" in draft.read_text()


def test_a_value_comparison_resolves_ambiguous_branches(legacy_checkpoint):
    # `resolve_ambiguous` is where a layer-by-layer value comparison plugs in;
    # here a stand-in chooses the swap, and the draft is proven again.
    prefix = legacy_checkpoint("two_branch_convnet")
    seen = []

    def swap(groups, matches):
        seen.append(groups)
        (first, first_target), (second, second_target) = groups[0]
        return {first: second_target, second: first_target}

    report = migrate.suggest(prefix, lambda: _two_branch_model(reverse=True),
                             resolve_ambiguous=swap, verify=_settings(_two_branch_settings()))
    assert len(seen) == 1
    assert report.ok, report.summary()


def test_a_model_with_a_layer_missing_is_not_ok_and_names_the_variables(legacy_checkpoint):
    from suggest_models import small_convnet_without_batch_norm

    entry = zoo.get("small_convnet")
    report = migrate.suggest(legacy_checkpoint("small_convnet"), small_convnet_without_batch_norm,
                             options=migrate.ConversionOptions(keep="model_state"),
                             verify=_settings(entry.verify))
    assert not report.ok
    assert [name for name, _ in report.dropped] == [
        "bn/gamma", "bn/beta", "bn/moving_mean", "bn/moving_variance"]
    assert "bn/moving_variance [4]" in report.summary()
    assert report.to_json()["ok"] is False


def test_a_model_with_an_extra_layer_lists_the_unfilled_weights(legacy_checkpoint):
    import keras

    from legacy_graphs import gru_classifier as legacy

    def with_extra_dense():
        features = keras.Input((None, legacy.FEATURES))
        net = keras.layers.GRU(legacy.UNITS, reset_after=False, name="gru")(features)
        net = keras.layers.Dense(7, name="extra")(net)
        return keras.Model(features, keras.layers.Dense(legacy.CLASSES, name="output")(net))

    report = migrate.suggest(legacy_checkpoint("gru_classifier"), with_extra_dense)
    assert not report.ok
    unfilled = [path for path, _ in report.unfilled]
    assert unfilled and all(path.startswith(("extra/", "output/")) for path in unfilled)
    assert "UNRESOLVED: no source variable fills" in report.text


def test_suggest_refuses_to_replace_a_draft_and_takes_verify_settings(legacy_checkpoint, tmp_path):
    entry = zoo.get("small_convnet")
    existing = tmp_path / "draft.toml"
    existing.write_text("keep me")
    with pytest.raises(migrate.OutputError) as raised:
        migrate.suggest(legacy_checkpoint("small_convnet"), entry.build_model,
                        output=str(existing))
    assert raised.value.option == "overwrite"
    assert existing.read_text() == "keep me"
    with pytest.raises(migrate.ArgumentError, match="Received: verify='images:0'"):
        migrate.suggest(legacy_checkpoint("small_convnet"), entry.build_model,
                        verify="images:0")


def test_plan_with_an_empty_table_pairs_unmapped_and_unfilled_by_shape(legacy_checkpoint):
    entry = zoo.get("small_convnet")
    plan = migrate.plan(legacy_checkpoint("small_convnet"), None, entry.build_model)
    pairs = {(source.source if source else None, target.target if target else None)
             for source, target in plan.side_by_side()}
    assert ("conv/kernel", "conv/kernel") in pairs
    assert ("logits/kernel", "logits/kernel") in pairs
    lines = plan.side_by_side_lines()
    assert lines[0] == "unmapped sources and unfilled targets, paired by shape:"
    assert any("conv/kernel [3, 3, 3, 4]  <->  conv/kernel [3, 3, 3, 4]" in line
               for line in lines)


def test_docs_suggest_example_is_what_the_commands_print(cli_in_process, legacy_checkpoint,
                                                        tmp_path):
    import os
    import re
    import shlex
    import shutil

    import docs_text

    text = docs_text.page("suggest")
    commands, printed, draft_excerpt = [
        block for block in docs_text.blocks(text) if block.kind in ("sh", "text", "toml")][:3]
    build, suggest, convert = [shlex.split(command.line)
                               for command in docs_text.commands(commands.body)]
    assert build == ["python", "-m", "legacy_graphs", "bert_encoder", "--output_dir=legacy"]
    # What that command writes (the session's build of it, with the same defaults).
    shutil.copytree(os.path.dirname(legacy_checkpoint("bert_encoder")), tmp_path / "legacy")
    assert suggest[:4] == ["python", "-m", "migrate", "suggest"]
    result = cli_in_process(*suggest[3:], cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    expected = printed.body.splitlines()
    lines = result.stdout.splitlines()
    assert len(lines) == len(expected)
    for line, wanted in zip(lines, expected):
        if wanted.startswith("  parity: "):  # Float round-off may differ between CPUs.
            line, wanted = (re.sub(r"diff [0-9.e+-]+", "diff X", text) for text in (line, wanted))
        assert line == wanted
    draft = (tmp_path / "draft.toml").read_text()
    assert "match = 'bert/pooler/.*'" in draft
    # The draft excerpt the page shows is the real draft's.
    rules = draft_excerpt.body.strip().split("\n\n")
    assert len(rules) == 3
    for rule in rules:
        assert rule in draft
    assert convert[:4] == ["python", "-m", "migrate", "convert"]
    result = cli_in_process(*convert[3:], cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr

def test_without_a_meta_the_builders_graph_gives_order_and_structure(legacy_checkpoint):
    entry = zoo.get("lstm_language_model")
    checkpoint = migrate.LegacyCheckpoint.open(legacy_checkpoint("lstm_language_model"),
                                               builder="lstm_language_model", use_meta=False)
    report = migrate.suggest(checkpoint, entry.build_model, verify=_settings(entry.verify))
    # The builder's graph, restored from the checkpoint, stands in for the .meta in parity too;
    # its dropout sits behind an is_training cond, so it runs as saved.
    assert report.ok and report.parity.passed and report.parity.dropout_off == []
    assert report.unfilled == [] and report.dropped == []
    assert all("no graph" not in " ".join(match["evidence"]) for match in report.matches)
    embedding = report.table.lookup("lm/embedding")
    assert embedding.target == "embedding/embeddings"
    assert [str(step) for step in embedding.rule.transforms] == ["unpartition_mod(3)"]


def test_suggest_proves_with_several_inputs_found_in_the_graph_and_feeds(tmp_path):
    import verify_graphs

    (tmp_path / "bert").mkdir()
    prefix = verify_graphs.save_graph(tmp_path / "bert", verify_graphs.build_bert_style)
    # No input tensors given: both placeholders are found, matched to the Keras inputs by name.
    settings = migrate.VerifySettings(output_tensor="encoded:0",
                                      input_max=[verify_graphs.VOCAB, verify_graphs.TYPES])
    report = migrate.suggest(prefix, verify_graphs.bert_style_model, verify=settings)
    assert report.ok, report.summary()
    assert set(report.parity.inputs) == {"input_ids:0", "token_type_ids:0"}
    (tmp_path / "char").mkdir()
    prefix = verify_graphs.save_graph(tmp_path / "char", verify_graphs.build_char_rnn)
    # The initial state and keep_prob, which the Keras model does not take, are fed constants.
    settings = migrate.VerifySettings(output_tensor="outputs:0",
                                      feeds={"istate:0": 0, "keep_prob:0": 1.0})
    report = migrate.suggest(prefix, verify_graphs.char_rnn_model, verify=settings)
    assert report.ok, report.summary()
    assert report.parity.inputs["istate:0"]["keras_input"] is False
    assert [rule.layout for rule in report.table.rules] == ["lstm"]
