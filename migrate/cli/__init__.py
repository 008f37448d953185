"""Command line: `python -m migrate COMMAND --flags`, the commands and their exit codes.

One module a job: `flags` (every flag, and which commands read it),
`command` (what a command needs), `settings` (from the flags to the library's
objects, and TensorFlow's quiet import), `console` (what is printed),
`commands` (one handler per command) and `main` (parse, check, run, exit
code). `main(argv)` parses the flags afresh, checks them before TensorFlow is
imported, and calls the library with keyword arguments, so porting code can
do the same without flags.
"""

from migrate.cli.commands import COMMANDS
from migrate.cli.flags import ALL_COMMANDS
from migrate.cli.flags import BATCH
from migrate.cli.flags import CHECK
from migrate.cli.flags import CONVERT
from migrate.cli.flags import DEMO
from migrate.cli.flags import INSPECT
from migrate.cli.flags import LINT
from migrate.cli.flags import PLAN
from migrate.cli.flags import PORT
from migrate.cli.flags import PROGRAM
from migrate.cli.flags import SUGGEST
from migrate.cli.flags import VERIFY
from migrate.cli.flags import ZOO
from migrate.cli.main import command_help
from migrate.cli.main import main
from migrate.cli.main import run
from migrate.cli.main import run_command
from migrate.cli.main import usage

__all__ = ["ALL_COMMANDS", "BATCH", "CHECK", "COMMANDS", "CONVERT", "DEMO", "INSPECT", "LINT",
           "PLAN", "PORT", "PROGRAM", "SUGGEST", "VERIFY", "ZOO", "command_help", "main", "run",
           "run_command", "usage"]
