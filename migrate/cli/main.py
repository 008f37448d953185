"""`main(argv)`: parse a command line afresh, check it before any import, run it, exit codes.

Every failure is one line on standard error: `error: ...`, exit 2 for usage
errors (with a `--help` hint), exit 1 for errors in the input; tracebacks only
with --verbose.
"""

import difflib
import os
import sys
import traceback

from absl import flags

from migrate import errors
from migrate.cli import console
from migrate.cli import settings
from migrate.cli.command import UsageError
from migrate.cli.command import flag_hint
from migrate.cli.command import flag_of
from migrate.cli.commands import COMMANDS
from migrate.cli.commands import SLOW_TO_START
from migrate.cli.flags import COMMANDS_OF_FLAG
from migrate.cli.flags import FAILURE_EXIT
from migrate.cli.flags import FLAGS
from migrate.cli.flags import HELP_ARGUMENTS
from migrate.cli.flags import INTERRUPTED_EXIT
from migrate.cli.flags import LEGACY_KERAS_VARIABLE
from migrate.cli.flags import PROGRAM
from migrate.cli.flags import SUCCESS_EXIT
from migrate.cli.flags import USAGE_EXIT
from migrate.output import atomic
from migrate.planning.plan import side_by_side_lines


USAGE = f"""\
Moves trained weights from a TF1 checkpoint into a Keras model, verified.

Usage: {PROGRAM} COMMAND [--flags]

Commands:
{{commands}}

`{PROGRAM} COMMAND --help` lists the flags of one command.

Example:
  {PROGRAM} convert --checkpoint=train/model.ckpt-3 --zoo=resnet_v1_50 --output=converted
"""


def usage():
    """Returns the text of `python -m migrate --help`: the commands, one line each."""
    lines = "\n".join(f"  {command.name:<9} {command.summary}" for command in COMMANDS.values())
    return USAGE.format(commands=lines)


def command_help(name, program=PROGRAM):
    """Returns the text of `python -m migrate NAME --help`: that command's flags only.

    Example:

    >>> print(command_help("check").splitlines()[0])
    Usage: python -m migrate check --output=... [--flags]
    """
    command = COMMANDS[name]
    shown = flags.FlagValues()
    for flag_name in command.flag_names:
        shown[flag_name] = FLAGS[flag_name]
    required = " ".join(
        f"--{requirement.alternatives[0][0]}=..." for requirement in command.requirements
        if len(requirement.alternatives) == 1 and len(requirement.alternatives[0]) == 1)
    invocation = program if program != PROGRAM else f"{PROGRAM} {name}"
    lines = [f"Usage: {' '.join(filter(None, (invocation, required)))} [--flags]", "",
             f"{name}: {command.summary}."]
    if command.requirements:
        lines.append("Needs: " + "; ".join(requirement.describe()
                                           for requirement in command.requirements) + ".")
    lines += ["", "Flags:", shown.get_help(prefix="  ", include_special_flags=False)]
    return "\n".join(lines) + "\n"


def _split_command(argv, command):
    """Returns `(command name, the arguments left to parse as flags)`.

    Raises:
        UsageError: no command, or an unknown one.
    """
    arguments = list(argv[1:])
    if command is not None:
        return command, arguments
    positional = [argument for argument in arguments if not argument.startswith("-")]
    if not positional or positional[0] not in COMMANDS:
        raise UsageError(f"Expected a command, one of {', '.join(COMMANDS)}. "
                         f"Received: {positional[0] if positional else 'nothing'}")
    arguments.remove(positional[0])
    return positional[0], arguments


def _parse(program, command, arguments):
    """Parses `arguments` into `FLAGS` afresh (defaults for every flag not given).

    Raises:
        UsageError: an unknown flag, a bad flag value, or a stray argument.
    """
    FLAGS.unparse_flags()
    try:
        remaining = FLAGS([program, *arguments])
    except flags.UnrecognizedFlagError as error:
        name = error.flagname
        close = difflib.get_close_matches(name, COMMANDS[command].flag_names, n=1)
        hint = f" Did you mean --{close[0]}?" if close else ""
        raise UsageError(f"`{command}` has no flag --{name}.{hint}") from None
    except flags.Error as error:
        raise UsageError(errors.first_line(error)) from None
    if len(remaining) > 1:
        raise UsageError(f"Unexpected arguments: {' '.join(remaining[1:])}")


def _check(command):
    """Checks the parsed flags against what `command` reads and needs, before any import.

    Raises:
        UsageError: a flag the command does not read, or missing required flags.
    """
    unused = [name for name in FLAGS if FLAGS[name].present
              and command.name not in COMMANDS_OF_FLAG[name]]
    if unused:
        users = ", ".join(COMMANDS_OF_FLAG[unused[0]])
        raise UsageError(f"`{command.name}` does not use --{unused[0]} (a flag of {users}).")
    missing = [requirement.describe() for requirement in command.requirements
               if not requirement.is_met()]
    if missing:
        raise UsageError(f"`{command.name}` needs {'; '.join(missing)}.")
    if command.check is not None:
        command.check()
    settings.check_zoo_name()


def _usage_hint(help_command, option=None, command=None):
    flag = flag_of(option)
    if command is not None and flag in command.flag_names:
        return f" (see --{flag} in `{help_command} --help`)"
    return f" (see `{help_command} --help`)"


def main(argv, *, command=None):
    """Runs one command line; returns the exit code. Parses the flags afresh on every call.

    Args:
        argv: `sys.argv`-like: the program, then `COMMAND --flags...` (or only
            the flags when `command` is given).
        command: the command a script stands for (`scripts/convert_checkpoint.py`
            is `convert`); its hints then name `python argv[0]`.

    Returns:
        0 on success, 1 when the input has a problem (one `error:` line on
        standard error), 2 for a usage error, 130 when interrupted.

    Example:

    >>> main(["migrate", "frobnicate"])
    2
    """
    program = PROGRAM if command is None else f"python {argv[0]}"
    if not flags.FLAGS.is_parsed():
        # absl's logging (used by TensorFlow) warns on every process whose
        # global flags were never parsed; this command line does not use them.
        flags.FLAGS.mark_as_parsed()
    if any(argument in HELP_ARGUMENTS for argument in argv[1:]):
        name = command or next((argument for argument in argv[1:] if argument in COMMANDS), None)
        print(command_help(name, program) if name else usage(), end="")
        return SUCCESS_EXIT
    help_command, name = PROGRAM, None
    try:
        name, arguments = _split_command(argv, command)
        help_command = program if command else f"{PROGRAM} {name}"
        _parse(argv[0], name, arguments)
        _check(COMMANDS[name])
        options = settings.conversion_options()  # Its own checks raise ArgumentError.
    except UsageError as error:
        console.print_error(error, _usage_hint(help_command))
        return USAGE_EXIT
    except errors.ArgumentError as error:
        console.print_error(error, _usage_hint(help_command, error.option, COMMANDS[name]))
        return USAGE_EXIT
    return _run(COMMANDS[name], options, help_command)


def _run(command, options, help_command):
    """Runs a checked command; turns what it raises into one line and an exit code."""
    console.show_status(
        f"{command.name}: starting (TensorFlow import, reading the checkpoint) ...",
        enabled=command.name in SLOW_TO_START and not FLAGS.json and not FLAGS.verbose)
    try:
        if FLAGS.builder:
            os.environ[LEGACY_KERAS_VARIABLE] = "1"
        if command.imports_tensorflow():
            settings.import_tensorflow_quietly()
        if FLAGS.report:
            # Checked before any work: a report that cannot be written after
            # the output was would leave an output a rerun refuses to replace.
            atomic.check_file_destination(FLAGS.report, option="report")
        return command.run(options)
    except errors.ArgumentError as error:
        _print_verbose_traceback(error)
        console.print_error(error, _usage_hint(help_command, error.option, command))
        return USAGE_EXIT
    except errors.MigrateError as error:
        _print_verbose_traceback(error)
        console.print_error(error, flag_hint(error.option, command))
        if isinstance(error, errors.PlanError):
            print(error.details(), file=sys.stderr)
            # What a table written by hand still needs: each source beside its likely target.
            for line in side_by_side_lines(error.problems):
                print(line, file=sys.stderr)
        return FAILURE_EXIT
    except KeyboardInterrupt:
        console.print_error("interrupted")
        return INTERRUPTED_EXIT
    except Exception as error:  # A bug or an unexpected TensorFlow failure.
        _print_verbose_traceback(error)
        console.print_error(f"{type(error).__name__}: {errors.first_line(error)} "
                     f"(run with --verbose for the traceback)")
        return FAILURE_EXIT
    finally:
        console.clear_status()


def _print_verbose_traceback(error):
    """With --verbose, prints the traceback, and that of the user's own code if it failed.

    A library error raised while importing or calling the user's model module
    may hide the original exception (`raise ... from None`); its traceback
    points into the user's code, which is what they need to see, so it is
    printed first. A cause chained with `from error` prints with the error.
    """
    if not FLAGS.verbose:
        return
    hidden = error.__context__ if error.__suppress_context__ else None
    if isinstance(error, errors.MigrateError) and hidden is not None:
        traceback.print_exception(hidden, file=sys.stderr)
    traceback.print_exception(error, file=sys.stderr)


def run_command(arguments, *, command=None):
    """Runs `python -m migrate ARGUMENTS` in this process; returns the exit code (for tests).

    Example:

    >>> run_command(["zoo", "--bogus"])
    2
    """
    return main(["migrate", *arguments], command=command)


def run():
    """The process entry point of `python -m migrate`."""
    sys.exit(main(sys.argv))
