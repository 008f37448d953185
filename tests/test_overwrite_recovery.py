"""A single conversion after a run killed while replacing its output (NAME.previous-*, partials).

`--overwrite` renames the old output to `NAME.previous-*`, renames the new
one from its `.NAME.partial-*` staging directory into place, then removes the
old one. These tests build the states a kill leaves between those steps and
check that `convert` (library and command line) recovers them before any
work, as a batch does, and says what it did.
"""

import errno
import fcntl
import json
import os
import shutil

import pytest

import migrate
from migrate import files
from migrate import zoo
from migrate.output import atomic

ENTRY = zoo.get("small_convnet")
RESTORED = "restored {output} from {output}.previous-0badf00d: a run was killed while replacing it"
REMOVED = ("removed {output}.previous-deadbeef: the output it held had already been replaced by "
           "a run killed before it could remove it")


@pytest.fixture(scope="module")
def prefix(legacy_checkpoint):
    return legacy_checkpoint("small_convnet")


@pytest.fixture(scope="module")
def converted(prefix, tmp_path_factory):
    """One converted output (trainable weights only) that each test copies into its states."""
    output = tmp_path_factory.mktemp("converted") / "out"
    migrate.convert(prefix, ENTRY.table_path, ENTRY.build_model, str(output))
    return output


def _killed_between_renames(converted, directory):
    """The old output only as NAME.previous-*; the new one in the dead run's .NAME.partial-*."""
    output = directory / "out"
    shutil.copytree(converted, f"{output}{atomic.PREVIOUS_MARK}0badf00d")
    # Written completely, but its run died before renaming it: unlocked.
    shutil.copytree(converted, directory / f".out{atomic.PARTIAL_MARK}deadbeef")
    return str(output), RESTORED.format(output=output)


def _killed_after_renames(converted, directory):
    """The new output in place, the old one still beside it as NAME.previous-*."""
    output = directory / "out"
    shutil.copytree(converted, output)
    shutil.copytree(converted, f"{output}{atomic.PREVIOUS_MARK}deadbeef")
    return str(output), REMOVED.format(output=output)


def _manifest(output):
    with open(os.path.join(output, "manifest.json"), encoding="utf-8") as file:
        return json.load(file)


def test_a_killed_overwrite_is_rolled_back_before_the_existing_output_is_refused(
        prefix, converted, tmp_path):
    output, note = _killed_between_renames(converted, tmp_path)
    # A dry run writes nothing, so it recovers nothing either.
    report = migrate.convert(prefix, ENTRY.table_path, ENTRY.build_model, output, dry_run=True)
    assert report.recovered == [] and not os.path.exists(output)
    # The refusal says that the output it refuses was just restored.
    with pytest.raises(migrate.OutputError, match="already exists") as raised:
        migrate.convert(prefix, ENTRY.table_path, ENTRY.build_model, output)
    assert str(raised.value).startswith(note + " ")
    assert raised.value.option == "overwrite"
    assert _manifest(output) == _manifest(converted)
    assert not [name for name in os.listdir(tmp_path) if atomic.PREVIOUS_MARK in name]


@pytest.mark.parametrize("state", [_killed_between_renames, _killed_after_renames])
def test_convert_recovers_a_killed_overwrite_and_reports_it(prefix, converted, tmp_path, state):
    output, note = state(converted, tmp_path)
    report = migrate.convert(prefix, ENTRY.table_path, ENTRY.build_model, output, overwrite=True,
                             options=migrate.ConversionOptions(keep="model_state"))
    assert report.recovered == [note]
    assert report.warnings[0] == note
    assert f"  warning: {note}" in report.summary().splitlines()
    document = json.loads(json.dumps(report.to_json()))
    assert document["recovered"] == [note] and document["warnings"][0] == note
    # The dead run's staging directory went too; the new output replaced the old.
    assert os.listdir(tmp_path) == ["out"]
    assert _manifest(output)["keep"] == "model_state"


@pytest.mark.parametrize("state", [_killed_between_renames, _killed_after_renames])
def test_command_line_convert_says_on_standard_error_what_it_recovered(
        prefix, converted, tmp_path, state, cli_in_process):
    work = tmp_path / "work"
    work.mkdir()
    output, note = state(converted, work)
    report_path = tmp_path / "report.json"
    result = cli_in_process("convert", f"--checkpoint={prefix}", "--zoo=small_convnet",
                            f"--output={output}", "--overwrite", "--json",
                            f"--report={report_path}")
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == [f"warning: {note}"]
    for document in (json.loads(result.stdout), json.loads(report_path.read_text())):
        assert document["recovered"] == [note] and document["warnings"][0] == note
    assert os.listdir(work) == ["out"]


def test_a_leftover_that_cannot_be_restored_is_one_error_line_before_any_work(
        prefix, converted, tmp_path, cli_in_process, monkeypatch):
    output, _ = _killed_between_renames(converted, tmp_path)
    before = sorted(os.listdir(tmp_path))

    def refuse(source, destination):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), source)

    monkeypatch.setattr(files, "rename", refuse)
    result = cli_in_process("convert", f"--checkpoint={prefix}", "--zoo=small_convnet",
                            f"--output={output}", "--overwrite")
    assert result.returncode == 1
    previous = f"{output}{atomic.PREVIOUS_MARK}0badf00d"
    assert result.stderr.splitlines() == [
        f"error: Cannot recover {output} from {previous}, left by a run killed while replacing "
        f"it: [Errno 13] Permission denied: {previous!r}. Expected a writable location; restore "
        f"or remove {previous} yourself. Received: output={output!r}"]
    assert sorted(os.listdir(tmp_path)) == before


def _converted_output(path, written_second=0):
    """A directory that looks like a converted output (it holds a manifest)."""
    os.makedirs(path)
    manifest = os.path.join(path, "manifest.json")
    with open(manifest, "w", encoding="utf-8") as file:
        file.write("{}")
    os.utime(manifest, (written_second, written_second))


def test_the_newest_of_several_leftovers_is_restored_and_the_others_removed(tmp_path):
    output = str(tmp_path / "out")
    # By name the older one comes first; by the time of its manifest, the newer one.
    older, newer = (f"{output}{atomic.PREVIOUS_MARK}{suffix}"
                    for suffix in ("00000000", "ffffffff"))
    _converted_output(older, written_second=1000)
    _converted_output(newer, written_second=2000)
    os.makedirs(f"{output}{atomic.PREVIOUS_MARK}11111111")  # Not a converted output.
    assert atomic.recover_previous(output) == [
        f"restored {output} from {newer}: a run was killed while replacing it",
        f"removed {older}: the output it held had already been replaced by a run killed before "
        f"it could remove it",
        f"{output}{atomic.PREVIOUS_MARK}11111111 is not a converted output (no manifest.json); "
        f"left as it is"]
    assert os.stat(os.path.join(output, "manifest.json")).st_mtime == 2000


def test_a_leftover_is_kept_beside_an_incomplete_output_and_while_a_conversion_runs(tmp_path):
    output = tmp_path / "out"
    previous = f"{output}{atomic.PREVIOUS_MARK}0badf00d"
    _converted_output(previous)
    running = tmp_path / f".out{atomic.PARTIAL_MARK}5eed5eed"
    running.mkdir()
    descriptor = os.open(running, os.O_RDONLY | os.O_DIRECTORY)
    try:
        # A conversion writing `out` holds this lock, and may be between its two renames.
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        assert atomic.recover_previous(str(output)) == []
    finally:
        os.close(descriptor)
    running.rmdir()
    output.mkdir()  # Not a complete output: the previous one may be the only copy.
    assert atomic.recover_previous(str(output)) == [
        f"{previous} left as it is: {output} is not a complete converted output "
        f"(no manifest.json)"]
    assert os.path.isdir(previous)
