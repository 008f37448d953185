"""The README's Python example runs as written, and its commands are the ones CI uses."""

import os
import re

README = os.path.join(os.path.dirname(__file__), os.pardir, "README.md")


def _readme():
    with open(README, encoding="utf-8") as file:
        return file.read()


def test_python_example_runs(tmp_path, monkeypatch):
    (example,) = re.findall(r"```python\n(.*?)```", _readme(), re.DOTALL)
    monkeypatch.chdir(tmp_path)
    exec(compile(example, "README.md", "exec"), {"__name__": "readme_example"})  # noqa: S102
    assert os.path.exists(tmp_path / "converted" / "manifest.json")


def test_exactly_two_setup_commands_and_ci_runs_the_test_one():
    commands = [line.strip() for line in _readme().splitlines()
                if line.strip().startswith("python3 -m venv")]
    assert len(commands) == 2
    assert commands[0].endswith("python -m migrate demo")
    with open(os.path.join(os.path.dirname(README), ".ci", "run"), encoding="utf-8") as file:
        ci = file.read()
    assert commands[1].replace("pip install -e", "pip install -q -e") in ci


def _section_commands(title, program):
    """Returns the commands of a README section that start with `program` (continuations joined)."""
    section = _readme().split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]
    commands, current = [], ""
    for line in section.splitlines():
        if not line.startswith("    ") and not current:
            continue
        current += " " + line.strip().rstrip("\\").strip()
        if not line.rstrip().endswith("\\"):
            if current.strip().startswith(program):
                commands.append(current.strip())
            current = ""
    return commands


def test_other_sources_commands_run(other_sources, cli_in_process, tmp_path):
    """The section's `migrate` commands, on a SavedModel at export/ and a frozen graph frozen.pb."""
    import shlex
    import shutil

    shutil.copytree(os.path.join(other_sources, "saved_model"), tmp_path / "export")
    shutil.copy(os.path.join(other_sources, "frozen_convnet.pb"), tmp_path / "frozen.pb")
    commands = _section_commands("Other sources", "python -m migrate ")
    assert len(commands) == 6
    for command in commands:
        arguments = shlex.split(command)[3:]
        result = cli_in_process(*arguments, cwd=str(tmp_path))
        assert result.returncode == 0, (command, result.stdout[-2000:], result.stderr)
        if arguments[0] != "inspect":
            assert "PASS" in result.stdout, (command, result.stdout)
    exports = _section_commands("Other sources", "python -m legacy_graphs.exports")
    assert exports and "--small_convnet=" in exports[0]
