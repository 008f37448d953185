"""Test set-up shared by every test module."""

import os

# The legacy TF1 graphs (tf-slim, rnn_cell) need Keras 2 behind `tf.keras`,
# which TensorFlow reads once at import; `import keras` stays Keras 3.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import subprocess  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402


@pytest.fixture(scope="session")
def legacy_checkpoint(tmp_path_factory):
    """Returns `build(name, **kwargs) -> prefix`, building each legacy checkpoint once per session."""
    import legacy_graphs

    built = {}

    def build(name, **kwargs):
        key = (name, tuple(sorted(kwargs.items())))
        if key not in built:
            directory = tmp_path_factory.mktemp(f"legacy_{name}")
            built[key] = legacy_graphs.build_in_subprocess(name, str(directory), **kwargs)
        return built[key]

    return build


@pytest.fixture(scope="session")
def other_sources(legacy_checkpoint, tmp_path_factory):
    """Returns the directory of `legacy_graphs.exports`: TF1 SavedModels, a TF-Hub module and
    frozen GraphDefs of small_convnet and gru_classifier, written once per session."""
    import legacy_graphs

    return legacy_graphs.build_exports_in_subprocess(
        legacy_checkpoint("small_convnet"), legacy_checkpoint("gru_classifier"),
        str(tmp_path_factory.mktemp("other_sources")))


def run_cli(*arguments, cwd=None):
    """Runs `python -m migrate ARGUMENTS` and returns the CompletedProcess."""
    environment = dict(os.environ)
    environment.pop("TF_USE_LEGACY_KERAS", None)
    return subprocess.run([sys.executable, "-m", "migrate", *arguments], capture_output=True,
                          text=True, cwd=cwd, env=environment, check=False, timeout=600)


@pytest.fixture
def cli_in_process(capsys, monkeypatch):
    """Returns `run(*arguments, cwd=None)`: `python -m migrate ARGUMENTS` inside this process.

    The same `migrate.cli.main` as the real process, with its flags parsed
    afresh on every call; the result is a CompletedProcess holding the exit
    code and what the command printed. For tests where process isolation (the
    real exit status, a crash, what gets imported) is not the point.
    """
    from migrate import cli

    def run(*arguments, cwd=None):
        capsys.readouterr()  # Only this command's output.
        with monkeypatch.context() as patch:
            if cwd is not None:
                patch.chdir(cwd)
            code = cli.run_command(list(arguments))
        captured = capsys.readouterr()
        return subprocess.CompletedProcess(["migrate", *arguments], code, captured.out,
                                           captured.err)

    return run
