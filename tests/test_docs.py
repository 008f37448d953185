"""Every command the README and docs/ print runs as printed, and ends as the page says.

Each page's ```sh and ```python blocks run in the order the page shows them, in an empty directory
of the page's own. `python -m migrate` runs in this process (the same `cli.run_command` as the
real process); `python -m legacy_graphs NAME --output_dir=DIR ...` is run once per test run with
the same flags (the session's shared builds) and its directory copied to DIR.
"""

import os
import shlex
import shutil
import subprocess
import sys

import pytest

import docs_text

_RUNNABLE = ("sh", "python")


def _runnable_pages():
    return [path for path in docs_text.pages()
            if any(block.kind in _RUNNABLE and block.runner is None
                   for block in docs_text.blocks(docs_text.read(path)))]


def _page_id(path):
    return os.path.relpath(path, docs_text.REPOSITORY)


def _flags(words):
    """Returns `{name: value}` of `--name=value` words (a bare `--name` is "true")."""
    flags = {}
    for word in words:
        assert word.startswith("--"), f"Expected only --flags. Received: {word!r}"
        name, _, value = word[2:].partition("=")
        flags[name] = value or "true"
    return flags


def _build_legacy(words, legacy_checkpoint, directory):
    """`python -m legacy_graphs NAME --output_dir=DIR [--seed=S] [--steps=N] [flags]`."""
    name, *rest = words
    flags = _flags(rest)
    output_dir = flags.pop("output_dir")
    arguments = {}
    if "seed" in flags:
        arguments["seed"] = int(flags.pop("seed"))
    if "steps" in flags:
        arguments["steps"] = int(flags.pop("steps"))
    if flags:
        arguments["extra_flags"] = tuple(f"--{key}={value}" for key, value in flags.items())
    prefix = legacy_checkpoint(name, **arguments)
    shutil.copytree(os.path.dirname(prefix), directory / output_dir, dirs_exist_ok=True)


def _run_process(words, directory):
    environment = dict(os.environ)
    if words[:3] == ["python", "-m", "legacy_graphs.exports"]:
        environment["TF_USE_LEGACY_KERAS"] = "1"  # As legacy_graphs' own builds run.
    else:
        environment.pop("TF_USE_LEGACY_KERAS", None)
    return subprocess.run([sys.executable, *words[1:]], cwd=directory, env=environment,
                          capture_output=True, text=True, check=False, timeout=900)


def _run_command(command, directory, legacy_checkpoint, cli_in_process):
    words = shlex.split(command.line)
    if words[:3] == ["python", "-m", "migrate"]:
        return cli_in_process(*words[3:], cwd=str(directory))
    if words[:3] == ["python", "-m", "legacy_graphs"]:
        _build_legacy(words[3:], legacy_checkpoint, directory)
        return subprocess.CompletedProcess(words, 0, "", "")
    if words[:3] == ["python", "-m", "legacy_graphs.exports"] or (
            words[0] == "python" and words[1].startswith("scripts/")):
        if words[1].startswith("scripts/"):  # A script of this repository, by its path.
            words = ["python", os.path.join(docs_text.REPOSITORY, words[1]), *words[2:]]
        return _run_process(words, directory)
    raise AssertionError(f"The docs test does not know how to run this command. "
                         f"Received: {command.line!r}")


@pytest.mark.parametrize("path", _runnable_pages(), ids=_page_id)
def test_every_printed_command_runs_as_printed(path, tmp_path, monkeypatch, legacy_checkpoint,
                                               cli_in_process):
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    for block in docs_text.blocks(docs_text.read(path)):
        if block.runner is not None or block.kind not in _RUNNABLE:
            continue
        if block.kind == "python":
            exec(compile(block.body, _page_id(path), "exec"), {"__name__": "docs_example"})  # noqa: S102
            continue
        for command in docs_text.commands(block.body):
            result = _run_command(command, tmp_path, legacy_checkpoint, cli_in_process)
            assert result.returncode == command.exit_code, (
                command.line, result.stdout[-3000:], result.stderr[-3000:])


def test_blocks_run_elsewhere_name_a_test_that_reads_their_page():
    for path in docs_text.pages():
        for block in docs_text.blocks(docs_text.read(path)):
            if block.runner is None:
                continue
            test_file, _, test_name = block.runner.partition("::")
            source = docs_text.read(os.path.join(docs_text.REPOSITORY, test_file))
            assert f"def {test_name}(" in source, block.runner
            page = os.path.splitext(os.path.basename(path))[0]
            assert f'page("{page}")' in source, (block.runner, page)


def test_every_page_is_reachable_from_the_readme_and_links_only_inside_the_repository():
    import re

    readme = docs_text.read(docs_text.README)
    for path in docs_text.pages()[1:]:
        assert f"(docs/{os.path.basename(path)})" in readme, path
    for path in docs_text.pages():
        for target in re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", docs_text.read(path)):
            if target.startswith(("http://", "https://")):
                continue
            resolved = os.path.normpath(os.path.join(os.path.dirname(path), target))
            assert resolved.startswith(docs_text.REPOSITORY + os.sep), (path, target)
            assert os.path.exists(resolved), (path, target)


def test_every_printed_command_is_of_a_kind_the_docs_test_runs():
    kinds = (("python", "-m", "migrate"), ("python", "-m", "legacy_graphs"),
             ("python", "-m", "legacy_graphs.exports"))
    for path in docs_text.pages():
        for block in docs_text.blocks(docs_text.read(path)):
            if block.kind != "sh":
                continue
            for command in docs_text.commands(block.body):
                words = tuple(shlex.split(command.line))
                assert words[:3] in kinds or (
                    words[0] == "python" and words[1].startswith("scripts/")), (path, command)


def test_the_readme_stays_short():
    assert len(docs_text.read(docs_text.README).splitlines()) <= 250
