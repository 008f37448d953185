"""The command line's verification: verify's input flags, --layers/--plot, convert/batch --verify.

Also batch's resume flags, its timeout and Ctrl-C, as the command line passes them on.
"""

import json
import os
import re
import warnings

import pytest

import docs_text
import verify_graphs
from migrate import zoo
from test_cli import _error_line

ENTRY = zoo.get("small_convnet")
# The conv kernel's spatial axes swapped: the shapes fit, the outputs do not.
_BROKEN_RULE = "[[rule]]\nmatch = 'conv/kernel'\ntarget = 'conv/kernel'\ntransform = "\
               "['transpose(1, 0, 2, 3)']\n"


def _json(result):
    assert result.stdout.strip(), result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def small_convnet(legacy_checkpoint):
    return legacy_checkpoint("small_convnet")


@pytest.fixture(scope="module")
def broken_table(tmp_path_factory):
    """small_convnet's table with the conv kernel transposed, the other rules as they are."""
    text = open(ENTRY.table_path, encoding="utf-8").read()
    rules = text.split("[[rule]]")
    rules = [rule for rule in rules[1:] if "'conv/kernel'" not in rule]
    path = tmp_path_factory.mktemp("broken_table") / "broken.toml"
    path.write_text(_BROKEN_RULE + "".join(f"\n[[rule]]{rule}" for rule in rules))
    return str(path)


@pytest.fixture(scope="module")
def bert_style(tmp_path_factory):
    directory = tmp_path_factory.mktemp("cli_bert_style")
    prefix = verify_graphs.save_graph(directory, verify_graphs.build_bert_style)
    table = verify_graphs.write_table(directory / "table.toml", verify_graphs.BERT_STYLE_TABLE)
    return prefix, table, directory


def test_a_two_input_bert_style_graph_verifies_from_the_command_line(cli_in_process, bert_style):
    prefix, table, directory = bert_style
    converted = str(directory / "converted")
    model = "--model=verify_graphs:bert_style_model"
    result = cli_in_process("convert", f"--checkpoint={prefix}", f"--table={table}", model,
                            f"--output={converted}")
    assert result.returncode == 0, result.stderr
    common = ["verify", f"--checkpoint={prefix}", f"--converted={converted}", model,
              "--output_tensor=encoded:0", "--input_max=11;2", "--json"]
    named = cli_in_process(*common, "--input_tensor=input_ids:0,token_type_ids:0")
    assert named.returncode == 0, named.stderr
    report = _json(named)
    assert report["passed"] and sorted(report["inputs"]) == ["input_ids:0", "token_type_ids:0"]
    # The placeholders found in the graph, matched to the Keras inputs by name.
    found = cli_in_process(*common)
    assert found.returncode == 0, found.stderr
    assert _json(found)["inputs"] == report["inputs"]
    # Real arrays from an .npz, by tensor name.
    import numpy as np

    np.savez(directory / "inputs.npz", input_ids=np.array([[1, 2, 3, 10]], np.int32),
             **{"token_type_ids:0": np.array([[0, 1, 1, 0]], np.int32)})
    real = cli_in_process(*common[:-2], f"--inputs={directory / 'inputs.npz'}", "--json")
    assert real.returncode == 0, real.stderr
    assert _json(real)["inputs"]["input_ids:0"]["shape"] == [1, 4]
    # One bound for all: type ids stop at the two rows of the table they index.
    one_bound = cli_in_process(*common[:-2], "--input_max=11", "--json")
    assert one_bound.returncode == 0, one_bound.stderr
    assert _json(one_bound)["inputs"]["token_type_ids:0"]["values"] == (
        "ids in [0, 2) (the 2 rows of bert/embeddings/token_type_embeddings; input_max 11 is "
        "for all inputs)")
    # Its own bound past the table is refused before TensorFlow fails on it.
    past = cli_in_process(*common[:-2], "--input_max=11;5")
    assert past.returncode == 1
    assert re.fullmatch(r"error: Placeholder token_type_ids:0 indexes bert/embeddings/"
                        r"token_type_embeddings, a table of 2 rows, .* Received: input_max=5 "
                        r"\(see --input_max\)", _error_line(past))
    # Real type ids past the table: TensorFlow's cause is shown, with the node.
    np.savez(directory / "bad.npz", input_ids=np.array([[1, 2, 3, 10]], np.int32),
             token_type_ids=np.array([[0, 1, 5, 0]], np.int32))
    bad = cli_in_process(*common[:-2], f"--inputs={directory / 'bad.npz'}")
    assert bad.returncode == 1
    assert re.fullmatch(r"error: The legacy graph failed to run: indices\[.*\] = 5 is not in "
                        r"\[0, 2\) \(node bert/embeddings/Gather_1\)\. Received: fed "
                        r"\['input_ids:0', 'token_type_ids:0'\]", _error_line(bad))
    # A bound more than the inputs found in the graph is not ignored.
    three = cli_in_process(*common[:-2], "--input_max=11;2;3")
    assert three.returncode == 1
    assert _error_line(three) == (
        "error: Expected input_max to have one entry per input tensor (2: input_ids:0, "
        "token_type_ids:0) or one for all. Received: input_max=(11, 2, 3) (see --input_max)")


@pytest.fixture(scope="module")
def char_rnn(tmp_path_factory):
    import migrate

    directory = tmp_path_factory.mktemp("cli_char_rnn")
    prefix = verify_graphs.save_graph(directory, verify_graphs.build_char_rnn)
    table = verify_graphs.write_table(directory / "table.toml", verify_graphs.CHAR_RNN_TABLE)
    converted = str(directory / "converted")
    migrate.convert(prefix, table, verify_graphs.char_rnn_model, converted)
    return prefix, converted


def test_a_char_rnn_with_an_initial_state_placeholder_verifies_with_feeds(cli_in_process,
                                                                          char_rnn):
    prefix, converted = char_rnn
    common = ["verify", f"--checkpoint={prefix}", f"--converted={converted}",
              "--model=verify_graphs:char_rnn_model", "--output_tensor=outputs:0"]
    # `data` is found as the Keras input's placeholder by its name.
    result = cli_in_process(*common, "--feed=istate:0=0", "--feed=keep_prob:0=1.0", "--json")
    assert result.returncode == 0, result.stderr
    report = _json(result)
    assert report["passed"] and report["inputs"]["istate:0"]["keras_input"] is False
    # Without the state's feed: the graph asks for it, named with its dtype and shape.
    result = cli_in_process(*common, "--feed=keep_prob:0=1.0")
    assert result.returncode == 1 and result.stdout == ""
    line = _error_line(result)
    assert "istate:0 float32 [?, 10], which is not fed; feed it with feeds={'istate:0': value}" in (
        line) and "Received: input_tensors=['data:0'], feeds=['keep_prob:0']" in line
    assert line.endswith(" (see --feed)"), line
    (example,) = [text.strip() for text in docs_text.page("verification").splitlines()
                  if "needs placeholder istate" in text]
    assert line.startswith(example.removesuffix("...")), (line, example)


def test_verify_layers_names_the_broken_layer_in_text_json_and_plot(cli_in_process, small_convnet,
                                                                    broken_table, tmp_path):
    converted = str(tmp_path / "broken")
    result = cli_in_process("convert", f"--checkpoint={small_convnet}", f"--table={broken_table}",
                            "--zoo=small_convnet", f"--output={converted}", "--keep=model_state")
    assert result.returncode == 0, result.stderr
    common = ["verify", f"--checkpoint={small_convnet}", f"--converted={converted}",
              "--zoo=small_convnet", "--layers"]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        text = cli_in_process(*common, f"--plot={tmp_path / 'layers.png'}")
    # The layer probe takes the inputs in the model's own structure: no Keras warning.
    assert not [str(item.message) for item in caught if "Expected: ['images']" in str(
        item.message)]
    assert text.returncode == 1 and text.stderr == ""
    assert "first divergent layer conv" in text.stdout, text.stdout
    assert re.search(r"^\s*conv\b.*", text.stdout, re.MULTILINE), text.stdout
    assert open(tmp_path / "layers.png", "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    document = _json(cli_in_process(*common, "--json"))
    assert document["first_divergent_layer"] == "conv" and not document["passed"]
    layers = {item["layer"]: item for item in document["layers"]}
    assert layers["conv"]["diverged"] and layers["conv"]["sources"] == ["conv/kernel"]
    # The right conversion: every layer within the tolerance.
    right = str(tmp_path / "right")
    assert cli_in_process("convert", f"--checkpoint={small_convnet}", "--zoo=small_convnet",
                          f"--output={right}", "--keep=model_state").returncode == 0
    document = _json(cli_in_process(*common[:2], f"--converted={right}", *common[3:], "--json"))
    assert document["passed"] and document["first_divergent_layer"] is None
    assert document["layers"] and not any(item["diverged"] for item in document["layers"])
    # --plot alone compares the layers to plot them, even when the outputs agree.
    result = cli_in_process(*common[:2], f"--converted={right}", "--zoo=small_convnet",
                            f"--plot={tmp_path / 'right.png'}")
    assert result.returncode == 0 and f"plot: {tmp_path / 'right.png'}" in result.stdout
    assert open(tmp_path / "right.png", "rb").read(8) == b"\x89PNG\r\n\x1a\n"


def test_convert_verify_keeps_only_a_passing_output(cli_in_process, small_convnet, broken_table,
                                                    tmp_path):
    output = tmp_path / "out"
    result = cli_in_process("convert", f"--checkpoint={small_convnet}", "--zoo=small_convnet",
                            f"--output={output}", "--keep=model_state", "--verify",
                            "--hash_sources")
    assert result.returncode == 0, result.stderr
    manifest = json.loads((output / "manifest.json").read_text())
    assert manifest["verified"]["passed"] is True
    assert manifest["source"]["fingerprint"]["kind"] == "metadata+sha256"

    # Trainable weights only: the BatchNorm statistics are missing, and the error says so.
    result = cli_in_process("convert", f"--checkpoint={small_convnet}", "--zoo=small_convnet",
                            f"--output={tmp_path / 'trainable'}", "--verify", "--json")
    assert result.returncode == 1
    line = _error_line(result)
    assert "(bn/moving_mean, bn/moving_variance), which keep='model_state' carries" in line
    assert line.endswith("first divergent layer bn (see --keep)"), line

    broken = ["convert", f"--checkpoint={small_convnet}", f"--table={broken_table}",
              "--zoo=small_convnet", f"--output={tmp_path / 'broken'}", "--keep=model_state",
              "--verify", "--json"]  # --json: no progress lines on standard error
    result = cli_in_process(*broken)
    assert result.returncode == 1 and result.stdout == ""
    line = _error_line(result)
    assert "nothing was written" in line and "first divergent layer conv" in line
    assert line.endswith("(see --keep_failed)"), line
    assert sorted(os.listdir(tmp_path)) == ["out"]
    # A feed the graph has no placeholder for: an error in the input, with the flag's hint.
    result = cli_in_process(*broken, "--feed=dropout:0=1")
    assert result.returncode == 1 and sorted(os.listdir(tmp_path)) == ["out"]
    line = _error_line(result)
    assert "no tensor dropout:0" in line and line.endswith("(see --feed)"), line
    result = cli_in_process(*broken, "--keep_failed")
    line = _error_line(result)
    assert result.returncode == 1 and "kept at" in line and "(see --" not in line, line
    manifest = json.loads((tmp_path / "broken" / "manifest.json").read_text())
    assert manifest["verified"]["passed"] is False


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """train/run1 with small_convnet step checkpoints 1-2."""
    from test_batch import write_step_checkpoints

    root = tmp_path_factory.mktemp("cli_batch") / "train"
    write_step_checkpoints((root / "run1", 2, 0, 2))
    return str(root)


def _other_graph_checkpoint(directory):
    """Saves small_convnet's variables under a graph that doubles the images first.

    Converting it works (same variables, same roles); its graph's output is
    not the Keras model's, so verification fails for this checkpoint alone.
    """
    tf = verify_graphs.tf_v1()
    with tf.Graph().as_default():
        tf.set_random_seed(0)
        images = tf.placeholder(tf.float32, [None, 8, 8, 3], name="images")
        net = tf.layers.conv2d(images * 2.0, 4, 3, padding="same", use_bias=False, name="conv")
        net = tf.nn.relu(tf.layers.batch_normalization(net, training=False, name="bn"))
        net = tf.layers.flatten(tf.layers.max_pooling2d(net, 2, 2, name="pool"), name="flatten")
        tf.layers.dense(net, 5, name="logits")
        with tf.Session() as session:
            session.run(tf.global_variables_initializer())
            os.makedirs(directory, exist_ok=True)
            return tf.train.Saver().save(session, os.path.join(directory, "model.ckpt"))


def test_batch_verify_counts_a_failing_checkpoint_and_completes_the_others(
        cli_in_process, tree, tmp_path):
    import shutil

    source = str(tmp_path / "train")
    shutil.copytree(tree, source)
    _other_graph_checkpoint(os.path.join(source, "run2"))
    output = tmp_path / "converted"
    result = cli_in_process("batch", f"--input_dir={source}", f"--output_dir={output}",
                            "--zoo=small_convnet", "--keep=model_state", "--verify",
                            "--workers=0")
    assert result.returncode == 1, result.stderr
    report = json.loads((output / "batch_report.json").read_text())
    statuses = {item["relative"]: item["status"] for item in report["items"]}
    assert statuses == {"run1/model.ckpt-1": "converted", "run1/model.ckpt-2": "converted",
                        "run2/model.ckpt": "failed"}
    assert report["totals"]["failed"] == 1 and report["totals"]["verify_failed"] == 1
    (failed,) = [item for item in report["items"] if item["status"] == "failed"]
    assert failed["verify_failed"] and "differs from the legacy graph" in failed["reason"]
    assert "(1 verification)" in result.stdout, result.stdout
    assert not (output / "run2" / "model.ckpt").exists()
    for relative in ("run1/model.ckpt-1", "run1/model.ckpt-2"):
        manifest = json.loads((output / relative / "manifest.json").read_text())
        assert manifest["verified"]["passed"] is True

    # Kept on request, a failed output is never taken as up to date.
    kept = ["batch", f"--input_dir={source}", f"--output_dir={output}", "--zoo=small_convnet",
            "--keep=model_state", "--verify", "--keep_failed", "--workers=0", "--json"]
    for _ in range(2):
        result = cli_in_process(*kept)
        assert result.returncode == 1
        assert _json(result)["totals"]["verify_failed"] == 1
        assert (output / "run2" / "model.ckpt" / "manifest.json").exists()


def _batch_statuses(output):
    report = json.loads((output / "batch_report.json").read_text())
    return {item["relative"]: item["status"] for item in report["items"]}


def test_batch_hash_sources_and_recheck_outputs_reach_the_library(cli_in_process, tree, tmp_path):
    output = tmp_path / "converted"
    common = ["batch", f"--input_dir={tree}", f"--output_dir={output}", "--zoo=small_convnet",
              "--workers=0"]
    assert cli_in_process(*common, "--hash_sources").returncode == 0
    manifest = json.loads((output / "run1" / "model.ckpt-1" / "manifest.json").read_text())
    assert manifest["source"]["fingerprint"]["kind"] == "metadata+sha256"
    data = output / "run1" / "model.ckpt-2" / "ckpt.data-00000-of-00001"
    content = bytearray(data.read_bytes())
    content[-1] ^= 0xFF
    data.write_bytes(bytes(content))
    assert cli_in_process(*common, "--hash_sources").returncode == 0
    assert set(_batch_statuses(output).values()) == {"skipped"}
    assert cli_in_process(*common, "--hash_sources", "--recheck_outputs").returncode == 0
    assert _batch_statuses(output) == {"run1/model.ckpt-1": "skipped",
                                       "run1/model.ckpt-2": "converted"}


def test_batch_timeout_per_checkpoint_reaches_the_workers(cli_in_process, tree, tmp_path,
                                                          monkeypatch, faults_in_every_worker):
    import batch_factories

    monkeypatch.setenv(batch_factories.HANG_VARIABLE, "run1/model.ckpt-2")
    output = tmp_path / "converted"
    result = cli_in_process("batch", f"--input_dir={tree}", f"--output_dir={output}",
                            f"--table={ENTRY.table_path}", "--model=batch_factories:hanging_model",
                            "--latest_only", "--timeout_per_checkpoint=5", "--json")
    assert result.returncode == 1
    (item,) = _json(result)["items"]
    assert item["status"] == "failed" and item["reason"].startswith(
        "timed out: no result after 5 s (timeout_per_checkpoint)")


@pytest.mark.parametrize("arguments, message", [
    (["--timeout_per_checkpoint=0"], "Expected timeout_per_checkpoint to be a number of seconds "
     "> 0. Received: timeout_per_checkpoint=0.0"),
    (["--timeout_per_checkpoint=-3"], "flag --timeout_per_checkpoint=-3"),
    (["--timeout_per_checkpoint=soon"], "flag --timeout_per_checkpoint=soon"),
    (["--hash_sources=maybe"], "flag --hash_sources=maybe"),
    (["--recheck_outputs=often"], "flag --recheck_outputs=often"),
    (["--keep_failed"], "--keep_failed is for --verify."),
    (["--verify", "--input_max=11;x"], "Received: input_max='11;x'"),
    (["--verify", "--feed=istate"], "Received: feed='istate'"),
    (["--runner=beam", "--timeout_per_checkpoint=60"], "--timeout_per_checkpoint is for "
     "--runner=local"),
])
def test_bad_batch_and_verify_values_are_usage_errors(cli_in_process, tmp_path, arguments,
                                                      message):
    result = cli_in_process("batch", "--input_dir=train", "--output_dir=o", "--zoo=small_convnet",
                            *arguments, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    line = _error_line(result)
    assert message in line and line.endswith("`python -m migrate batch --help`)"), line
    assert os.listdir(tmp_path) == []


def test_ctrl_c_in_batch_shows_the_partial_report_and_exits_130(cli_in_process, tree, tmp_path,
                                                                monkeypatch):
    from migrate import pipeline

    opened = pipeline.open_checkpoint

    def interrupt_on_second(checkpoint, options=None, **keywords):
        if str(checkpoint).endswith("run1/model.ckpt-2"):
            raise KeyboardInterrupt
        return opened(checkpoint, options, **keywords)

    monkeypatch.setattr(pipeline, "open_checkpoint", interrupt_on_second)
    output = tmp_path / "converted"
    common = ["batch", f"--input_dir={tree}", f"--output_dir={output}", "--zoo=small_convnet",
              "--workers=0"]
    result = cli_in_process(*common, "--json")
    assert result.returncode == 130 and result.stderr == "error: interrupted\n"
    document = _json(result)
    assert document["totals"]["converted"] == 1 and document["totals"]["not started"] == 1
    assert json.loads((output / "batch_report.json").read_text()) == document
    result = cli_in_process(*common)
    assert result.returncode == 130 and result.stderr.endswith("error: interrupted\n")
    assert "  converted 0, skipped 1 (up to date), failed 0, not started 1 (interrupted)\n" in (
        result.stdout)


def test_convert_dry_run_with_verify_is_a_usage_error(cli_in_process, small_convnet, tmp_path):
    # Verification restores the written output; a dry run would skip it without a word.
    result = cli_in_process("convert", f"--checkpoint={small_convnet}", "--zoo=small_convnet",
                            f"--output={tmp_path / 'out'}", "--dry_run", "--verify", cwd=tmp_path)
    assert result.returncode == 2 and os.listdir(tmp_path) == []
    assert _error_line(result) == (
        "error: Verification restores the written output, and a dry run writes nothing. Expected "
        "dry_run=False, or options without verify. Received: dry_run=True (see --dry_run in "
        "`python -m migrate convert --help`)")
