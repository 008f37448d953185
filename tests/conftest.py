"""Test set-up shared by every test module."""

import os

# The legacy TF1 graphs (tf-slim, rnn_cell) need Keras 2 behind `tf.keras`,
# which TensorFlow reads once at import; `import keras` stays Keras 3.
os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import compileall  # noqa: E402
import contextlib  # noqa: E402
import fcntl  # noqa: E402
import hashlib  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402

import pytest  # noqa: E402


_PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def pytest_configure(config):
    """Compiles the project's modules to bytecode once, before the test workers start.

    With PYTHONDONTWRITEBYTECODE set (as on this project's machines) Python
    never writes it, so each of the hundreds of processes the tests start
    (command lines, batch workers, checkpoint builders) would compile about a
    hundred modules' source again, 0.3 s each; an installed package has its
    bytecode.
    """
    if hasattr(config, "workerinput"):  # A pytest-xdist worker: the controller did it.
        return
    for package in ("migrate", "legacy_graphs"):
        compileall.compile_dir(os.path.join(_PROJECT, package), quiet=1)


@contextlib.contextmanager
def _locked(path):
    with open(path, "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _shared_directory(tmp_path_factory, name):
    """A directory every pytest-xdist worker of this run shares (the base temp's parent)."""
    base = tmp_path_factory.getbasetemp()
    root = base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base
    directory = root / name
    directory.mkdir(exist_ok=True)
    return directory


def _built_once(shared, key, build):
    """Returns what `build(directory)` returned, run once for `key` across the test workers.

    The first worker to ask builds while the others wait for it; what it
    returns (a path) is kept beside the build.
    """
    directory = shared / key
    done = shared / f"{key}.built"
    with _locked(shared / f"{key}.lock"):
        if not done.exists():
            shutil.rmtree(directory, ignore_errors=True)  # A build that failed half-way.
            directory.mkdir()
            done.write_text(build(str(directory)))
    return done.read_text()


@pytest.fixture(scope="session")
def legacy_checkpoint(tmp_path_factory):
    """Returns `build(name, **kwargs) -> prefix`, building each legacy checkpoint once per run.

    The test workers share the builds. Tests never change a built checkpoint
    (they damage copies).
    """
    import legacy_graphs

    shared = _shared_directory(tmp_path_factory, "legacy_checkpoints")

    def build(name, **kwargs):
        digest = hashlib.sha256(repr(sorted(kwargs.items())).encode()).hexdigest()[:12]
        return _built_once(shared, f"{name}-{digest}", lambda directory: (
            legacy_graphs.build_in_subprocess(name, directory, **kwargs)))

    return build


@pytest.fixture(scope="session")
def other_sources(legacy_checkpoint, tmp_path_factory):
    """Returns the directory of `legacy_graphs.exports`: TF1 SavedModels, a TF-Hub module and
    frozen GraphDefs of small_convnet and gru_classifier, written once per run."""
    import legacy_graphs

    small_convnet = legacy_checkpoint("small_convnet")
    gru_classifier = legacy_checkpoint("gru_classifier")
    return _built_once(
        _shared_directory(tmp_path_factory, "legacy_checkpoints"), "other_sources",
        lambda directory: legacy_graphs.build_exports_in_subprocess(
            small_convnet, gru_classifier, directory))


@pytest.fixture
def faults_in_every_worker(monkeypatch):
    """Installs `worker_faults` in every Python process the test starts (batch copy workers build
    no model, so the faulty model factories alone do not reach them)."""
    import worker_faults

    worker_faults.in_every_process(monkeypatch)


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
