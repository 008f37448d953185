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
