"""Safety: tables are data, `--model` imports only what it names, outputs stay put, `check`."""

import ast
import hashlib
import json
import os
import re
import shutil
import sys

import pytest

import damage
import migrate
from migrate import OutputError
from migrate.output import manifest as manifest_lib
from migrate.planning import target as target_model

SCANNED = ("migrate", "legacy_graphs", "scripts")
FORBIDDEN_CALLS = {"eval", "exec", "compile", "__import__", "execfile"}
FORBIDDEN_MODULES = {"pickle", "cPickle", "_pickle", "marshal", "shelve", "dill", "cloudpickle",
                     "joblib", "yaml"}
FORBIDDEN_ATTRIBUTES = {("os", "system"), ("os", "popen"), ("pickle", "loads"),
                        ("pickle", "load"), ("yaml", "load")}


def _unsafe_constructs(source, path):
    """Returns `path:line: what` for every construct that runs or unpickles data as code."""
    found = []
    for node in ast.walk(ast.parse(source, path)):
        if isinstance(node, ast.Call):
            function = node.func
            if isinstance(function, ast.Name) and function.id in FORBIDDEN_CALLS:
                found.append(f"{path}:{node.lineno}: {function.id}()")
            if isinstance(function, ast.Attribute) and isinstance(function.value, ast.Name) and (
                    function.value.id, function.attr) in FORBIDDEN_ATTRIBUTES:
                found.append(f"{path}:{node.lineno}: {function.value.id}.{function.attr}()")
            for keyword in node.keywords:
                if keyword.arg in ("shell", "allow_pickle") and not (
                        isinstance(keyword.value, ast.Constant) and keyword.value.value is False):
                    found.append(f"{path}:{node.lineno}: {keyword.arg}=")
        elif isinstance(node, ast.Import):
            found += [f"{path}:{node.lineno}: import {alias.name}" for alias in node.names
                      if alias.name.split(".")[0] in FORBIDDEN_MODULES]
        elif isinstance(node, ast.ImportFrom) and node.module and (
                node.module.split(".")[0] in FORBIDDEN_MODULES):
            found.append(f"{path}:{node.lineno}: from {node.module} import")
    return found


def test_the_scanner_finds_each_unsafe_construct():
    source = ("import pickle\nfrom yaml import load\neval('1')\nexec('x = 1')\n"
              "__import__('os')\nimport os\nos.system('true')\n"
              "np.load('x.npy', allow_pickle=True)\nsubprocess.run('x', shell=True)\n")
    assert len(_unsafe_constructs(source, "sample.py")) == 8


def test_no_source_file_evaluates_text_or_unpickles_data():
    repository = damage.REPOSITORY
    found, scanned = [], 0
    for top in SCANNED:
        for root, _, names in os.walk(os.path.join(repository, top)):
            for name in names:
                if name.endswith(".py"):
                    path = os.path.join(root, name)
                    scanned += 1
                    found += _unsafe_constructs(open(path, encoding="utf-8").read(),
                                                os.path.relpath(path, repository))
    assert scanned > 30
    assert found == []


def test_a_table_is_data_even_when_it_looks_like_code(tmp_path):
    marker = tmp_path / "ran"
    payload = f"__import__('os').system('touch {marker}')"
    as_target = migrate.MappingTable.from_text(
        damage.table_text({"match": "dense/kernel", "target": payload}))
    assert as_target.lookup("dense/kernel").target == payload  # A string, never run.
    as_name = migrate.MappingTable.from_text(
        damage.table_text({"match": re.escape(payload), "target": "dense/kernel"}))
    assert as_name.lookup(payload).target == "dense/kernel"
    for transform in (payload, f"reshape({payload})", "exec('1')", "eval(1)"):
        with pytest.raises(migrate.TableError, match="`transform` is not valid"):
            migrate.MappingTable.from_text(damage.table_text(
                {"match": "dense/kernel", "target": "dense/kernel", "transform": [transform]}))
    assert not marker.exists()


@pytest.fixture()
def package(tmp_path, monkeypatch):
    """A package whose modules record their own import in a file."""
    root = tmp_path / "modules"
    (root / "pkg").mkdir(parents=True)
    log = tmp_path / "imported.txt"
    record = f"open({str(log)!r}, 'a').write(__name__ + '\\n')\n"
    (root / "pkg" / "__init__.py").write_text(record)
    (root / "pkg" / "models.py").write_text(
        record + damage.model_module().split('"""\n', 2)[-1] + "NOT_CALLABLE = 3\n")
    (root / "pkg" / "other.py").write_text(record)
    monkeypatch.syspath_prepend(str(root))
    yield log
    for name in ("pkg", "pkg.models", "pkg.other"):
        sys.modules.pop(name, None)


def test_model_flag_imports_the_module_it_names_and_nothing_else(package):
    factory = target_model.load_factory("pkg.models:build")
    assert package.read_text().split() == ["pkg", "pkg.models"]
    assert factory().weights


@pytest.mark.parametrize("spec, message", [
    ("pkg.models", "Expected a model factory as module:callable"),
    ("pkg.models:NOT_CALLABLE", "Module 'pkg.models' has no callable 'NOT_CALLABLE'"),
    ("pkg.models:build.__globals__", "has no callable 'build.__globals__'"),
    ("../pkg/models:build", "Cannot import model module '../pkg/models'"),
    ("__import__('os').system('true'):x", "Cannot import model module"),
])
def test_model_flag_refuses_what_is_not_module_colon_callable(package, spec, message):
    with pytest.raises(migrate.ModelError, match=None) as raised:
        target_model.load_factory(spec)
    assert message in str(raised.value)
    assert "pkg.other" not in (package.read_text() if package.exists() else "")


def test_a_failing_model_import_or_factory_keeps_its_cause(tmp_path, monkeypatch):
    (tmp_path / "broken_models.py").write_text("raise ImportError('no such helper: frobnicate')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(migrate.ModelError) as raised:
        target_model.load_factory("broken_models:build")
    assert str(raised.value) == (
        "Cannot import model module 'broken_models': no such helper: frobnicate. Expected an "
        "importable module. Received: model='broken_models:build'")
    assert isinstance(raised.value.__cause__, ImportError)

    def broken_factory():
        return {}["no such layer"]

    with pytest.raises(migrate.ModelError) as raised:
        target_model.build(broken_factory)
    assert str(raised.value).startswith("The model factory failed: 'no such layer'. Expected a "
                                        "factory that returns a built Keras model. Received: "
                                        "factory=test_a_failing_model_import_or_factory_keeps")
    assert isinstance(raised.value.__cause__, KeyError)
    assert raised.value.__cause__.__traceback__ is not None


def test_an_existing_output_names_the_overwrite_option_not_a_flag(tmp_path):
    from migrate.output import atomic

    with pytest.raises(OutputError) as raised:
        atomic.check_output(str(tmp_path), overwrite=False)
    assert str(raised.value) == (
        f"Output {tmp_path} already exists. Expected a new directory, or overwrite=True to "
        f"replace it. Received: output={str(tmp_path)!r}")
    assert raised.value.option == "overwrite"
    assert "--" not in str(raised.value)


@pytest.fixture(scope="module")
def seed_prefix(legacy_checkpoint):
    return legacy_checkpoint(damage.SEED_MODEL)


@pytest.mark.parametrize("name", ["hostile_source_names", "hostile_target_names",
                                  "unicode_and_spaces"])
def test_outputs_never_escape_the_output_directory(name, seed_prefix, tmp_path):
    case = damage.CASES_BY_NAME[name]
    outcome = damage.run_case(case, tmp_path / "cases", seed_prefix=seed_prefix, in_process=True)
    assert damage.check_outcome(case, outcome) == []
    output = outcome.inputs.values["output"]
    written = {path for path in outcome.after if path not in outcome.before}
    relative_output = os.path.relpath(output, outcome.inputs.directory)
    files = sorted(os.path.relpath(path, relative_output) for path in written
                   if outcome.after[path] != "<dir>")
    if case.steps[-1].output_expected:
        assert files == ["checkpoint", "ckpt.data-00000-of-00001", "ckpt.index", "manifest.json"]
    else:
        assert files == []
    # Nothing beside the case directory either.
    assert os.listdir(tmp_path / "cases") == [name]


@pytest.fixture()
def converted(seed_prefix, tmp_path):
    case = damage.CASES_BY_NAME["stale_partial_directories"]
    outcome = damage.run_case(case, tmp_path, seed_prefix=seed_prefix, in_process=True)
    assert damage.check_outcome(case, outcome) == []
    return outcome.inputs.values["output"]


def _manifest(output):
    with open(os.path.join(output, manifest_lib.MANIFEST_NAME)) as file:
        return json.load(file)


def _write_manifest(output, manifest):
    with open(os.path.join(output, manifest_lib.MANIFEST_NAME), "w") as file:
        json.dump(manifest, file)


def test_check_finds_changed_missing_and_unexpected_files(converted):
    assert manifest_lib.check(converted).ok
    data = os.path.join(converted, "ckpt.data-00000-of-00001")
    with open(data, "r+b") as file:
        file.seek(5)
        byte = file.read(1)
        file.seek(5)
        file.write(bytes([byte[0] ^ 1]))
    os.remove(os.path.join(converted, "checkpoint"))
    open(os.path.join(converted, "extra.bin"), "wb").close()
    report = manifest_lib.check(converted)
    assert (report.mismatched, report.missing, report.unexpected) == (
        ["ckpt.data-00000-of-00001"], ["checkpoint"], ["extra.bin"])
    assert report.summary() == (f"check FAILED: {converted}: ckpt.data-00000-of-00001: changed; "
                                f"checkpoint: missing; extra.bin: not in manifest")


def test_check_verifies_blake3_and_the_sha256_of_manifests_written_before(converted):
    import blake3

    manifest = _manifest(converted)
    data_name = "ckpt.data-00000-of-00001"
    for entry in manifest["output_files"]:
        with open(os.path.join(converted, entry["path"]), "rb") as file:
            content = file.read()
        assert entry == {"path": entry["path"], "blake3": blake3.blake3(content).hexdigest(),
                         "bytes": len(content)}
        # What a manifest before BLAKE3 held, for the files but the data file.
        if entry["path"] != data_name:
            entry["sha256"] = hashlib.sha256(content).hexdigest()
            del entry["blake3"]
    _write_manifest(converted, manifest)
    assert manifest_lib.check(converted).ok
    for name in (data_name, "ckpt.index"):
        with open(os.path.join(converted, name), "r+b") as file:
            byte = file.read(1)
            file.seek(0)
            file.write(bytes([byte[0] ^ 1]))
    assert manifest_lib.check(converted).mismatched == ["ckpt.data-00000-of-00001", "ckpt.index"]


def test_check_never_reads_outside_the_output(converted, tmp_path):
    outside = tmp_path / "secret.txt"
    outside.write_text("not yours")
    manifest = _manifest(converted)
    manifest["output_files"].append({"path": f"../{outside.name}", "sha256": "0" * 64})
    manifest["output_files"].append({"path": str(outside), "sha256": "0" * 64})
    _write_manifest(converted, manifest)
    report = manifest_lib.check(converted)
    assert report.mismatched == [] and report.missing == sorted([f"../{outside.name}",
                                                                 str(outside)])


@pytest.mark.parametrize("manifest, message", [
    ("{not json", "is not a valid manifest"),
    ("null", "is not a valid manifest"),
    ('{"output_files": "ckpt.index"}', "is not a valid manifest"),
    ('{"output_files": [{"path": 7, "sha256": "x"}]}',
     "needs a string `path` and `blake3` or `sha256`"),
    ('{"output_files": [{"path": "ckpt.index", "blake3": 7}]}',
     "needs a string `path` and `blake3` or `sha256`"),
    ('{"output_files": [{"path": "ckpt.index"}]}',
     "is not a valid manifest: output_files entry 1 needs a string `path` and `blake3` or "
     "`sha256`. Expected a JSON object whose output_files entries each hold a string `path` and "
     "`blake3` or `sha256`. Received: {'path': 'ckpt.index'}"),
])
def test_check_refuses_a_broken_manifest_in_one_sentence(converted, manifest, message):
    with open(os.path.join(converted, manifest_lib.MANIFEST_NAME), "w") as file:
        file.write(manifest)
    with pytest.raises(OutputError) as raised:
        manifest_lib.check(converted)
    assert message in str(raised.value)


def test_check_refuses_unreadable_entries_without_a_traceback(converted):
    os.remove(os.path.join(converted, "checkpoint"))
    os.mkdir(os.path.join(converted, "checkpoint"))  # A directory under a recorded file name.
    with pytest.raises(OutputError, match="Cannot read .*checkpoint"):
        manifest_lib.check(converted)
    shutil.rmtree(os.path.join(converted, "checkpoint"))
    os.remove(os.path.join(converted, manifest_lib.MANIFEST_NAME))
    os.mkdir(os.path.join(converted, manifest_lib.MANIFEST_NAME))
    with pytest.raises(OutputError, match="Cannot read .*manifest.json"):
        manifest_lib.check(converted)


def test_cli_check_of_a_directory_without_manifest_is_one_line(tmp_path):
    result = damage.run_step_subprocess(
        damage.Step(("check",), 1, ""), ["check", f"--output={tmp_path}"],
        damage.Inputs(str(tmp_path), str(tmp_path), {}))
    assert result.code == 1
    assert result.stderr.strip() == (f"error: {tmp_path} has no manifest.json. Expected a "
                                     f"directory written by a conversion. "
                                     f"Received: output={str(tmp_path)!r}")
