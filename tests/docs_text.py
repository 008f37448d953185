"""The README's and docs/ pages' text, and the commands and code they print, for the tests.

A page prints commands in fenced ```sh blocks and Python in fenced ```python blocks; both run as
printed, in the order the page shows them (tests/test_docs.py). Output, synopses and TOML sit in
```text and ```toml blocks, which are not run. A block that a test of its own runs (and checks
more closely) is preceded by `<!-- run by tests/FILE.py::TEST -->`.
"""

import dataclasses
import os
import re

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
README = os.path.join(REPOSITORY, "README.md")
DOCS = os.path.join(REPOSITORY, "docs")

_BLOCK = re.compile(r"(?:<!-- run by (?P<runner>\S+) -->\n)?```(?P<kind>\w*)\n(?P<body>.*?)```",
                    re.DOTALL)
_EXPECTED_EXIT = re.compile(r"\s+#\s*exit (\d+)$")


@dataclasses.dataclass(frozen=True)
class Block:
    kind: str  # "sh", "python", "text", "toml", ...
    body: str
    runner: str | None  # The test that runs it, when it is not tests/test_docs.py.


@dataclasses.dataclass(frozen=True)
class Command:
    line: str  # Continuation lines joined, the exit comment removed.
    exit_code: int  # What the page says it exits with (`# exit N`), else 0.


def pages():
    """Returns the paths of the README and every docs/ page."""
    return [README] + sorted(os.path.join(DOCS, name) for name in os.listdir(DOCS)
                             if name.endswith(".md"))


def read(path):
    with open(path, encoding="utf-8") as file:
        return file.read()


def page(name):
    """Returns the text of docs/NAME.md, or of the README for "README"."""
    return read(README if name == "README" else os.path.join(DOCS, f"{name}.md"))


def blocks(text):
    """Returns the page's fenced blocks, in order."""
    return [Block(match["kind"], match["body"], match["runner"])
            for match in _BLOCK.finditer(text)]


def commands(body):
    """Returns the commands of an ```sh block: continuations joined, comment lines skipped.

    A command's only comment is the exit code it is expected to end with
    (`# exit 1`); any other `#` is part of the command.
    """
    result, current = [], ""
    for line in body.splitlines():
        if not current and (not line.strip() or line.lstrip().startswith("#")):
            continue
        current += line.rstrip().removesuffix("\\").strip() + " "
        if not line.rstrip().endswith("\\"):
            line, current = current.strip(), ""
            match = _EXPECTED_EXIT.search(line)
            result.append(Command(line[:match.start()] if match else line,
                                  int(match.group(1)) if match else 0))
    return result


def all_commands(program=("python", "-m", "migrate")):
    """Returns every printed command, in every page's every ```sh block, that starts with
    `program`; with the page's name, as `(page path, Command)`."""
    prefix = " ".join(program) + " "
    return [(path, command) for path in pages() for block in blocks(read(path))
            if block.kind == "sh" for command in commands(block.body)
            if command.line.startswith(prefix)]
