"""Open once, plan once: a command opens the legacy checkpoint and plans the conversion once,
and the verification stage works with what it was handed."""

import collections
import json

import pytest

from migrate import pipeline
from migrate import zoo
from migrate.source import checkpoint as checkpoint_lib
from migrate.source import locate

ENTRY = zoo.get("small_convnet")


@pytest.fixture(scope="module")
def small_convnet(legacy_checkpoint):
    return legacy_checkpoint("small_convnet")


@pytest.fixture(scope="module")
def transposed_conv_table(tmp_path_factory):
    """small_convnet's table with the conv kernel's two spatial axes swapped (same shape)."""
    text = open(ENTRY.table_path, encoding="utf-8").read()
    broken = text.replace("target = 'conv/kernel'",
                          "target = 'conv/kernel'\ntransform = ['transpose(1, 0, 2, 3)']")
    assert broken != text
    path = tmp_path_factory.mktemp("table") / "transposed.toml"
    path.write_text(broken)
    return str(path)


@pytest.fixture
def counted(monkeypatch):
    """Counts checkpoint openings, prefix resolutions and plans made, wherever they happen."""
    counts = collections.Counter()

    def counting(owner, name):
        original = getattr(owner, name)

        def wrapper(*args, **kwargs):
            counts[name] += 1
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, wrapper)

    opened = checkpoint_lib.LegacyCheckpoint.open.__func__

    def open_counted(cls, *args, **kwargs):
        counts["open"] += 1
        return opened(cls, *args, **kwargs)

    monkeypatch.setattr(checkpoint_lib.LegacyCheckpoint, "open", classmethod(open_counted))
    counting(locate, "resolve_prefix")
    counting(pipeline, "make_plan")
    return counts


def test_convert_verify_opens_the_checkpoint_once_and_plans_once(cli_in_process, small_convnet,
                                                                 tmp_path, counted):
    result = cli_in_process("convert", f"--checkpoint={small_convnet}", "--zoo=small_convnet",
                            f"--output={tmp_path / 'out'}", "--keep=model_state", "--verify",
                            "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["verified"]["passed"]
    assert counted == {"open": 1, "resolve_prefix": 1, "make_plan": 1}


def test_a_failing_convert_verify_compares_layers_from_the_same_plan(
        cli_in_process, small_convnet, transposed_conv_table, tmp_path, counted):
    result = cli_in_process("convert", f"--checkpoint={small_convnet}",
                            f"--table={transposed_conv_table}", "--zoo=small_convnet",
                            f"--output={tmp_path / 'out'}", "--keep=model_state", "--verify",
                            "--json")
    assert result.returncode == 1
    # The layer comparison ran, and blamed the layer the broken rule fed.
    assert "first divergent layer conv" in result.stderr, result.stderr
    assert counted == {"open": 1, "resolve_prefix": 1, "make_plan": 1}


def test_the_verify_command_opens_once_and_plans_once(cli_in_process, small_convnet, tmp_path,
                                                      counted):
    converted = tmp_path / "out"
    assert cli_in_process("convert", f"--checkpoint={small_convnet}", "--zoo=small_convnet",
                          f"--output={converted}", "--keep=model_state").returncode == 0
    counted.clear()
    result = cli_in_process("verify", f"--checkpoint={small_convnet}", "--zoo=small_convnet",
                            f"--converted={converted}", "--layers", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["passed"] and document["layers"]
    assert counted == {"open": 1, "resolve_prefix": 1, "make_plan": 1}
