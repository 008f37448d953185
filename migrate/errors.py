"""Errors a user can act on; the command line prints them as one line and exits 1.

Messages follow one shape: what is wrong, what was expected, and
`Received: name=value`. They name the library's own arguments and options,
never command-line flags: an error that one option would change carries
that option's name in `option`, and the command line adds the flag hint.
"""

import difflib


class MigrateError(Exception):
    """Base class: something about the input is wrong, and the message says what.

    Args:
        message: the one-line explanation.
        option: the keyword option that would change the outcome (for example
            "overwrite" or "allow_nonfinite"), or None.

    Example:

    >>> error = MigrateError("Output converted already exists.", option="overwrite")
    >>> str(error), error.option
    ('Output converted already exists.', 'overwrite')
    """

    def __init__(self, message="", *, option=None):
        super().__init__(message)
        self.option = option


class ArgumentError(MigrateError, ValueError):
    """An argument of a library call is not valid; the command line treats it as a usage error."""


class TableError(MigrateError):
    """A mapping table cannot be read or is not valid."""


class CheckpointError(MigrateError):
    """A legacy checkpoint cannot be found, read, or trusted."""


class ModelError(MigrateError):
    """The target model cannot be built or does not fit the conversion."""


class OutputError(MigrateError):
    """The output cannot be written where it was asked for."""


class PlanError(MigrateError):
    """The conversion plan has problems; nothing was written.

    Attributes:
        problems: every offender, each a `migrate.planning.plan.Problem`.
    """

    def __init__(self, problems):
        self.problems = list(problems)
        kinds = {}
        for problem in self.problems:
            kinds[problem.kind] = kinds.get(problem.kind, 0) + 1
        counts = ", ".join(f"{count} {kind}" for kind, count in sorted(kinds.items()))
        super().__init__(
            f"The conversion plan has {len(self.problems)} problem(s) ({counts}); "
            f"nothing was written. First: {self.problems[0].describe()}")

    def details(self):
        """Returns every problem, one per line."""
        return "\n".join(f"  - {problem.describe()}" for problem in self.problems)


class VerificationError(MigrateError):
    """The converted model's outputs differ from the legacy graph's beyond the tolerance."""


def did_you_mean(value, choices):
    """Returns " Did you mean 'x'?" for the choice closest to a mistyped value, or "".

    Args:
        value: the value received.
        choices: the valid values.

    Returns:
        A sentence to append to an error message (with a leading space), or ""
        when no choice is close.

    Example:

    >>> did_you_mean("resnet_v1_5", ["resnet_v1_50", "vgg_16"])
    " Did you mean 'resnet_v1_50'?"
    >>> did_you_mean("xyz", ["resnet_v1_50", "vgg_16"])
    ''
    """
    close = difflib.get_close_matches(str(value), [str(choice) for choice in choices], n=1)
    return f" Did you mean {close[0]!r}?" if close else ""


def reason(error):
    """Returns `first_line(error)` without a final period, to go inside a sentence.

    Example:

    >>> f"Cannot read model.ckpt-3: {reason(OSError('Permission denied.'))}. Expected ..."
    'Cannot read model.ckpt-3: Permission denied. Expected ...'
    """
    return first_line(error).rstrip().rstrip(".")


def first_line(error):
    """Returns the first line of an exception's message (TensorFlow's run long).

    Args:
        error: any exception.

    Returns:
        Its first non-empty line, joined with the next when it ends with ":";
        the exception's type name when the message is empty.

    Example:

    >>> first_line(RuntimeError("Failed to read.\\n  details..."))
    'Failed to read.'
    >>> first_line(KeyError())
    'KeyError'
    """
    lines = [line.strip() for line in (getattr(error, "message", None) or str(error)).splitlines()
             if line.strip()]
    if not lines:
        return type(error).__name__
    # TensorFlow often ends the first line with "Original error:" and puts the
    # cause on the next line.
    if lines[0].endswith(":") and len(lines) > 1:
        return f"{lines[0]} {lines[1]}"
    return lines[0]
