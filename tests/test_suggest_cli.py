"""`python -m migrate suggest`, and plan and lint pairing unmapped sources with unfilled targets."""

import json
import os
import re

REPOSITORY = os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir)
SMALL_CONVNET = "migrate.zoo.small_convnet:build_model"
SMALL_CONVNET_INPUTS = ("--output_tensor=logits/BiasAdd:0", "--input_shape=8,8,3")


def test_suggest_drafts_a_table_that_converts_with_parity(cli_in_process, legacy_checkpoint,
                                                           tmp_path):
    prefix = legacy_checkpoint("small_convnet")
    draft = tmp_path / "draft.toml"
    result = cli_in_process("suggest", f"--checkpoint={prefix}", f"--model={SMALL_CONVNET}",
                            f"--output={draft}", "--keep=model_state", *SMALL_CONVNET_INPUTS)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.splitlines()[-1] == f"draft proven -> {draft}"
    assert "parity: verify PASS" in result.stdout and "fed images:0" in result.stdout
    # The unedited draft converts, and the conversion passes parity before it is kept.
    converted = tmp_path / "converted"
    result = cli_in_process("convert", f"--checkpoint={prefix}", f"--table={draft}",
                            f"--model={SMALL_CONVNET}", f"--output={converted}",
                            "--keep=model_state", "--verify", *SMALL_CONVNET_INPUTS)
    assert result.returncode == 0, result.stdout + result.stderr
    manifest = json.loads((converted / "manifest.json").read_text())
    assert manifest["verified"]["passed"] is True


def test_suggest_refuses_to_replace_a_draft_without_overwrite(cli_in_process, legacy_checkpoint,
                                                             tmp_path):
    prefix = legacy_checkpoint("small_convnet")
    draft = tmp_path / "draft.toml"
    draft.write_text("keep me")
    arguments = ["suggest", f"--checkpoint={prefix}", f"--model={SMALL_CONVNET}",
                 f"--output={draft}", "--keep=model_state"]
    result = cli_in_process(*arguments)
    assert result.returncode == 1 and draft.read_text() == "keep me"
    assert result.stderr.strip().endswith("refusing to replace it. (see --overwrite)")
    # Without --output_tensor parity cannot run; the draft plans clean and says so.
    result = cli_in_process(*arguments, "--overwrite", "--json")
    document = json.loads(result.stdout)
    assert result.returncode == 0, result.stdout
    assert document["ok"] is True and document["parity"] is None
    assert "output tensor" in document["parity_note"]


def test_suggest_for_a_model_with_a_layer_missing_exits_1_naming_the_variables(
        cli_in_process, legacy_checkpoint, tmp_path):
    prefix = legacy_checkpoint("small_convnet")
    draft = tmp_path / "draft.toml"
    result = cli_in_process("suggest", f"--checkpoint={prefix}",
                            "--model=suggest_models:small_convnet_without_batch_norm", f"--output={draft}",
                            "--keep=model_state", *SMALL_CONVNET_INPUTS)
    assert result.returncode == 1, result.stdout + result.stderr
    for name in ("bn/gamma [4]", "bn/beta [4]", "bn/moving_mean [4]", "bn/moving_variance [4]"):
        assert f"    {name}" in result.stdout
    assert "draft NOT proven" in result.stdout
    unresolved = result.stdout.split("unresolved (marked in the draft;")[1]
    assert "parity: verify FAIL" in unresolved
    # Written anyway for the user to edit: the batch norm's variables are explicit drops.
    text = draft.read_text()
    assert all(f"match = 'bn/{name}'\ndrop = true" in text
               for name in ("gamma", "beta", "moving_mean", "moving_variance"))
    assert "UNRESOLVED: parity verify FAIL" in text


def test_plan_without_a_table_prints_the_pairs_by_shape(cli_in_process, legacy_checkpoint):
    prefix = legacy_checkpoint("small_convnet")
    result = cli_in_process("plan", f"--checkpoint={prefix}", f"--model={SMALL_CONVNET}")
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert lines[0].startswith("error: The conversion plan has ")
    start = lines.index("unmapped sources and unfilled targets, paired by shape:")
    pairs = [re.sub(r"\s+", " ", line.strip()) for line in lines[start + 1:]]
    assert "conv/kernel [3, 3, 3, 4] <-> conv/kernel [3, 3, 3, 4]" in pairs
    assert "logits/kernel [64, 5] <-> logits/kernel [64, 5]" in pairs


def test_lint_with_the_model_prints_the_pairs_by_shape(cli_in_process, legacy_checkpoint,
                                                      tmp_path):
    prefix = legacy_checkpoint("small_convnet")
    table = tmp_path / "table.toml"
    table.write_text("[[rule]]\nmatch = 'conv/(.*)'\ntarget = 'conv/\\1'\n")
    result = cli_in_process("lint", f"--table={table}", f"--checkpoint={prefix}",
                            f"--model={SMALL_CONVNET}")
    assert result.returncode == 1, result.stdout + result.stderr
    lines = [re.sub(r"\s+", " ", line.strip()) for line in result.stdout.splitlines()]
    assert "unmapped sources and unfilled targets, paired by shape:" in lines
    assert "logits/kernel [64, 5] <-> logits/kernel [64, 5]" in lines
    assert not any(line.startswith("conv/kernel") for line in lines)
    # The zoo's own table leaves nothing out.
    result = cli_in_process("lint", f"--checkpoint={prefix}", "--zoo=small_convnet", "--json")
    assert result.returncode == 0, result.stdout + result.stderr
    assert json.loads(result.stdout)["side_by_side"] == []


def test_lint_model_needs_a_checkpoint(cli_in_process, tmp_path):
    result = cli_in_process("lint", "--table=t.toml", f"--model={SMALL_CONVNET}", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.startswith("error: lint's --model (or --zoo) needs --checkpoint")
