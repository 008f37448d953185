"""Bad inputs: each corpus case's exact outcome (tests/damage.py), and the guards behind them."""

import fcntl
import json
import os
import re
import subprocess
import sys
import time

import numpy as np
import pytest

import damage
from migrate import MappingTable
from migrate import TableError
from migrate.source import bundle_index
from migrate.mapping import pattern_cost
from migrate.mapping import table as table_lib
from migrate.output import atomic


@pytest.fixture(scope="module")
def seed_prefix(legacy_checkpoint):
    return legacy_checkpoint(damage.SEED_MODEL)


@pytest.mark.parametrize("case", damage.CASES, ids=lambda case: case.name)
def test_bad_input_gets_its_exact_outcome(case, seed_prefix, tmp_path):
    # In this process where the case allows it (same `main`, a second instead
    # of ten); limits, SIGKILL and read-only runs need a real child process.
    # scripts/robustness_report.py runs every case as a real child process.
    outcome = damage.run_case(case, tmp_path, seed_prefix=seed_prefix, in_process=True)
    assert damage.check_outcome(case, outcome) == []


def _index_variant(seed_prefix, directory, edit):
    prefix = damage.copy_checkpoint(seed_prefix, str(directory))
    damage.edit_index_record(prefix + ".index", "conv/kernel", edit)
    return prefix


def _entry_edit(change):
    from tensorflow.core.protobuf import tensor_bundle_pb2

    def edit(value):
        entry = tensor_bundle_pb2.BundleEntryProto.FromString(value)
        change(entry)
        return entry.SerializeToString()
    return edit


def _rank(entry, rank):
    del entry.shape.dim[:]
    for _ in range(rank):
        entry.shape.dim.add(size=1)


@pytest.mark.parametrize("change, problem", [
    (lambda entry: entry.shape.dim[0].__setattr__("size", -1),
     "tensor 'conv/kernel' has a negative dimension in its shape [-1, 3, 3, 4]"),
    (lambda entry: [entry.shape.dim[index].__setattr__("size", 1 << 40) for index in (0, 1)],
     "tensor 'conv/kernel' has more elements than int64 can count, shape "
     "[1099511627776, 1099511627776, 3, 4]"),
    (lambda entry: _rank(entry, 300), "tensor 'conv/kernel' has 300 dimensions (at most 253)"),
    (lambda entry: entry.__setattr__("dtype", 101),
     "tensor 'conv/kernel' has dtype number 101, not a tensor type"),
    (lambda entry: entry.__setattr__("dtype", 0),
     "tensor 'conv/kernel' has dtype number 0, not a tensor type"),
])
def test_index_records_that_abort_tensorflow_are_found_in_python(seed_prefix, tmp_path, change,
                                                                  problem):
    prefix = _index_variant(seed_prefix, tmp_path, _entry_edit(change))
    summary = bundle_index.read_index(open(prefix + ".index", "rb").read())
    assert summary.problems == [problem]


def test_tensorflow_really_aborts_on_such_an_index_and_the_cli_does_not(seed_prefix, tmp_path):
    # Why migrate.bundle_index exists: TensorFlow 2.21's reader CHECK-fails.
    prefix = _index_variant(seed_prefix, tmp_path,
                            _entry_edit(lambda entry: entry.shape.dim[0].__setattr__("size", -2)))
    completed = subprocess.run(
        [sys.executable, "-c",
         "import sys, tensorflow as tf; tf.train.load_checkpoint(sys.argv[1])", prefix],
        capture_output=True, text=True, env=damage.environment(), timeout=300)
    assert completed.returncode == -6  # SIGABRT
    assert "Check failed: size >= 0 (-2 vs. 0)" in completed.stderr
    result = subprocess.run([sys.executable, "-m", "migrate", "inspect", f"--checkpoint={prefix}"],
                            capture_output=True, text=True, env=damage.environment(), timeout=300)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: Checkpoint index {prefix}.index is damaged: tensor 'conv/kernel' has a negative "
        f"dimension in its shape [-2, 3, 3, 4]; TensorFlow's reader would abort the process on it. "
        f"Expected an index whose records all parse. Received: checkpoint={prefix!r}")


def test_an_unreadable_index_is_an_error_and_a_bug_in_the_check_is_not_swallowed(
        seed_prefix, tmp_path, monkeypatch):
    from migrate import CheckpointError
    from migrate.source.checkpoint import LegacyCheckpoint

    prefix = damage.copy_checkpoint(seed_prefix, str(tmp_path / "unreadable"))
    os.remove(prefix + ".index")
    os.mkdir(prefix + ".index")  # Exists, cannot be read as a file.
    with pytest.raises(CheckpointError, match=re.escape(
            f"Cannot read checkpoint index {prefix}.index: ")) as raised:
        LegacyCheckpoint.open(prefix)
    assert str(raised.value).endswith(
        f"Expected a readable file. Received: checkpoint={prefix!r}")

    def broken_parser(index_bytes):
        raise RuntimeError("a bug in the index parser")

    monkeypatch.setattr(bundle_index, "read_index", broken_parser)
    with pytest.raises(RuntimeError, match="a bug in the index parser"):
        LegacyCheckpoint.open(seed_prefix)


def test_index_reader_gives_extents_and_leaves_unknown_bytes_to_tensorflow(seed_prefix):
    index = open(seed_prefix + ".index", "rb").read()
    summary = bundle_index.read_index(index)
    assert summary.problems == []
    assert summary.extents == {0: os.path.getsize(seed_prefix + ".data-00000-of-00001")}
    # A re-encoded table (as the fuzzer writes) reads the same.
    assert bundle_index.read_index(damage.encode_table(damage.decode_table(index))) == summary
    for damaged in (b"", index[:-1], index[:100], b"\0" * 4096, bytes(reversed(index))):
        assert bundle_index.read_index(damaged) is None
    unparsable = damage.decode_table(index)
    key, _ = unparsable[0][1][3]
    unparsable[0][1][3] = (key, b"\x12\x7f")
    assert bundle_index.read_index(damage.encode_table(unparsable)).problems == [
        f"the record of {key.decode()!r} is not a valid BundleEntryProto"]


def _seconds(function):
    started = time.perf_counter()
    function()
    return time.perf_counter() - started


def _fastest_of(function, repeats=3):
    # The fastest of a few runs: the least disturbed by other work on the machine.
    return min(_seconds(function) for _ in range(repeats))


def test_an_exponential_pattern_is_really_exponential_and_is_refused_at_once():
    pattern = "(?:a?){%d}a{%d}"
    # On n letters 'a' the matcher tries 2^n ways to place the optional ones.
    small, large = (_fastest_of(lambda n=n: re.fullmatch(pattern % (n, n), "a" * n))
                    for n in (12, 16))
    assert large > 4 * small, (small, large)  # 2^4 = 16 in theory.
    text = f"[[rule]]\nmatch = '{pattern % (30, 30)}'\ntarget = 'x'\n"
    started = time.perf_counter()
    with pytest.raises(TableError, match=r"may need about 10\^9 backtracking steps"):
        MappingTable.from_text(text)
    assert time.perf_counter() - started < 0.5
    # What it would have cost: about 2^30 steps, 2^14 times the n=16 run.
    assert large * 2 ** 14 > 10 * (time.perf_counter() - started)


def test_a_polynomial_pattern_is_really_slow_and_is_refused_at_once():
    pattern = "(.*)/(.*)/(.*)/(.*)/x"
    small, large = (_fastest_of(lambda n=n: re.fullmatch(pattern, "a/" * n))
                    for n in (40, 80))
    assert large > 4 * small, (small, large)  # n^4: 16 in theory.
    started = time.perf_counter()
    with pytest.raises(TableError, match=r"10\^12 backtracking steps .* because its repeats can "
                                         r"trade characters"):
        MappingTable.from_text(f"[[rule]]\nmatch = '{pattern}'\ntarget = 'x'\n")
    assert time.perf_counter() - started < 0.5
    # The suggested rewrite is accepted and linear.
    MappingTable.from_text("[[rule]]\nmatch = '([^/]*)/([^/]*)/([^/]*)/(.*)/x'\ntarget = 'x'\n")


@pytest.mark.parametrize("pattern, accepted", [
    (r"(.*)/(.*)/kernel", True),
    (r"layer_(\d+)/(.*)/(.*)/kernel", True),
    (r"(\w+)/(\w+)/(\w+)/(\w+)/(\w+)/x", True),
    (r".*/(Adam|Momentum)(_\d+)?", True),
    (r"(?:.*+){9}x", True),
    (r"(?>.*)(?>.*)(?>.*)x", True),
    (r"(a?){20}a{20}", True),
    (r"(.*)/(.*)/(.*)/kernel", False),
    (r"(a?){25}a{25}", False),
    (r"(?:a|b|ab|ba){30}c", False),
    (r"a*a*a*b", False),
    (r"(?i)(A*)(a*)(a*)b", False),
    (r"(?=.*.*.*x).*", False),
])
def test_pattern_cost_accepts_linear_and_quadratic_patterns_only(pattern, accepted):
    steps = pattern_cost.worst_case_steps(re.compile(pattern),
                                          name_length=table_lib.MAX_NAME_LENGTH)
    assert (steps <= table_lib.MAX_PATTERN_STEPS) == accepted, steps


def test_every_zoo_table_passes_the_pattern_checks():
    from migrate import zoo
    for name in zoo.available():
        assert len(MappingTable.load(zoo.get(name).table_path)) > 0


def test_stale_partial_directories_are_removed_and_running_ones_kept(tmp_path):
    output = tmp_path / "out"
    stale, running = (tmp_path / f".out{atomic.PARTIAL_MARK}{name}" for name in ("dead", "live"))
    for directory in (stale, running):
        directory.mkdir()
        (directory / "ckpt.index").write_bytes(b"half")
    (tmp_path / f".out{atomic.PARTIAL_MARK}file").write_text("not a directory")
    os.symlink(tmp_path / "elsewhere", tmp_path / f".out{atomic.PARTIAL_MARK}link")
    (tmp_path / ".other.partial-dead").mkdir()
    descriptor = os.open(running, os.O_RDONLY | os.O_DIRECTORY)
    try:
        # A conversion that is writing holds this lock (flock is per open
        # file, so this process's own lock counts as another writer's).
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert atomic.remove_stale_partials(str(output)) == [str(stale)]
    finally:
        os.close(descriptor)
    assert sorted(os.listdir(tmp_path)) == [
        ".other.partial-dead", ".out.partial-file", ".out.partial-link", ".out.partial-live"]
    assert atomic.remove_stale_partials(str(output)) == [str(running)]


def test_tensor_names_and_dtypes_the_corpus_writes_read_back(tmp_path):
    tensors = {"vocabulary": np.array([b"a", b"\xff"], dtype=object),
               "counter": np.arange(3, dtype="int64"), "flag": np.array([True]),
               "half": np.ones((2,), "float16"),
               "my layer/kérnel 🙂": np.zeros((1, 2), "float32")}
    read = damage.read_checkpoint(damage.write_checkpoint(str(tmp_path / "model.ckpt-1"),
                                                          tensors))
    assert sorted(read) == sorted(tensors)
    for name, value in tensors.items():
        np.testing.assert_array_equal(read[name], value)


def _script(name, *arguments):
    completed = subprocess.run([sys.executable, os.path.join(damage.REPOSITORY, "scripts", name),
                                *arguments], capture_output=True, text=True,
                               env=damage.environment(), timeout=1200)
    return completed


def test_a_short_fuzz_run_finds_no_crash_hang_or_unexpected_error(seed_prefix, tmp_path):
    # Index records edited with valid checksums made TensorFlow abort in about
    # one case in four before migrate.bundle_index; 40 of them, then tables.
    completed = _script("fuzz.py", "--iterations=40", "--seconds=240", "--seed=7",
                        "--part=index_record", "--part=data", f"--checkpoint={seed_prefix}",
                        f"--workdir={tmp_path}", "--json")
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    summary = json.loads(completed.stdout)
    assert summary["findings"] == 0
    for target in ("checkpoint", "table"):
        result = summary["targets"][target]
        assert result["cases"] == 40
        assert (result["crash"], result["hang"], result["unexpected"]) == (0, 0, 0)
        assert result["error"] > 10  # The mutations do damage, and it is reported.


def test_robustness_report_counts_what_the_cases_did(seed_prefix, tmp_path):
    # Each case's own outcome is tested above; this is about the report's counting (a
    # killed run's exit codes included), on the quickest cases of each kind.
    cases = ["data_flipped", "killed_mid_write", "output_no_space"]
    completed = _script("robustness_report.py", f"--cases={','.join(cases)}",
                        f"--checkpoint={seed_prefix}", f"--workdir={tmp_path}", "--json")
    assert completed.returncode == 0, completed.stdout[-3000:]
    document = json.loads(completed.stdout)
    assert document["figures"] == {"tried": 3, "clean": 3, "tracebacks": 0, "crashes": 0,
                                   "partial_outputs": 0, "inputs_modified": 0}
    rows = {row["case"]: row for row in document["cases"]}
    assert rows["killed_mid_write"]["codes"] == [-9, 0, 0]
    assert rows["output_no_space"]["error_line"].startswith("error: Cannot write output ")
