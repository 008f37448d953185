"""What the command line prints besides its flags' help: the status line, reports, error lines."""

import json
import os
import sys

from migrate import progress
from migrate.cli.flags import ERROR_PREFIX
from migrate.cli.flags import FLAGS

# The running command's status line (on a terminal only); everything that
# prints erases it first.
_status = progress.StatusLine(enabled=False)


def show_status(text, *, enabled):
    """Shows `text` as the running command's status line, on a terminal when `enabled`."""
    global _status
    _status = progress.StatusLine(enabled=enabled)
    _status.show(text)


def clear_status():
    """Erases the status line, before anything else is printed."""
    _status.clear()


def emit(document, summary):
    if FLAGS.report:
        temporary = f"{FLAGS.report}.partial"
        with open(temporary, "w", encoding="utf-8") as file:
            json.dump(document, file, indent=2, sort_keys=True)
            file.write("\n")
        os.replace(temporary, FLAGS.report)
    clear_status()
    print(json.dumps(document, indent=2, sort_keys=True) if FLAGS.json else summary)


def print_error(message, hint=""):
    clear_status()
    print(f"{ERROR_PREFIX}{message}{hint}", file=sys.stderr)
