"""The README's two set-up commands are the ones CI and the demo use.

Every other command and example the README and docs/ print is run by tests/test_docs.py.
"""

import os

import docs_text


def test_exactly_two_setup_commands_and_ci_runs_the_test_one():
    commands = [line.strip() for line in docs_text.read(docs_text.README).splitlines()
                if line.strip().startswith("python3 -m venv")]
    assert len(commands) == 2
    assert commands[0].endswith("python -m migrate demo")
    ci = docs_text.read(os.path.join(docs_text.REPOSITORY, ".ci", "run"))
    assert commands[1].replace("pip install -e", "pip install -q -e") in ci
