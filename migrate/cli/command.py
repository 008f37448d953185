"""What a command is: its name, handler, required flags and the rules between its flags."""

import dataclasses

from migrate.cli.flags import COMMANDS_OF_FLAG
from migrate.cli.flags import FLAG_OF_OPTION
from migrate.cli.flags import FLAGS
from migrate.source import locate


class UsageError(Exception):
    """The command line is not valid; printed as one line with a --help hint, exit 2."""


@dataclasses.dataclass(frozen=True)
class Requirement:
    """Flags a command cannot do without: any one of `alternatives`, each given in full.

    Attributes:
        alternatives: groups of flag names, e.g. `(("table", "model"), ("zoo",))`.
        unless: a boolean flag that, when set, lifts the requirement.
    """

    alternatives: tuple
    unless: str | None = None
    unless_signature: bool = False

    def is_met(self):
        if self.unless is not None and FLAGS[self.unless].value:
            return True
        if self.unless_signature and checkpoint_has_signature():
            return True
        return any(all(FLAGS[name].value not in (None, "") for name in group)
                   for group in self.alternatives)

    def describe(self):
        text = ", or ".join(" and ".join(f"--{name}" for name in group)
                            for group in self.alternatives)
        if self.unless_signature:
            text += " (unless --checkpoint is a SavedModel: its signature names the tensors)"
        return text if self.unless is None else f"{text} (unless --{self.unless})"


def checkpoint_has_signature():
    """Whether --checkpoint names a TF1 SavedModel, whose signature names verify's tensors.

    Told from the file names alone: nothing is imported or parsed.
    """
    return (FLAGS.checkpoint is not None
            and locate.source_kind(FLAGS.checkpoint)[0] == locate.KIND_SAVED_MODEL)


def needs(*names):
    return Requirement(((*names,),))


TABLE_AND_MODEL = Requirement((("table", "model"), ("zoo",)))


@dataclasses.dataclass(frozen=True)
class Command:
    """One command of the command line.

    Attributes:
        name: what follows `python -m migrate`.
        summary: one line for the list of commands.
        run: `run(options)` with the `ConversionOptions` built from the flags:
            calls the library, prints; returns the exit code.
        requirements: `Requirement`s checked before anything is imported.
        check: rules between flags, checked with the requirements; raises
            `UsageError`. None: no such rules.
        needs_tensorflow: whether TensorFlow is imported (quietly) before
            `run`: True or False, or a callable that decides from the parsed
            flags (a batch needs it in this process only for some of them).
    """

    name: str
    summary: str
    run: object
    requirements: tuple = ()
    check: object = None
    needs_tensorflow: object = True

    @property
    def flag_names(self):
        return sorted(name for name, commands in COMMANDS_OF_FLAG.items()
                      if self.name in commands)

    def imports_tensorflow(self):
        """Whether this command line imports TensorFlow (quietly) before `run`."""
        needs = self.needs_tensorflow
        return bool(needs() if callable(needs) else needs)


def flag_of(option):
    """Returns the flag name of a library option (`feeds` -> `feed`)."""
    return FLAG_OF_OPTION.get(option, option)


def flag_hint(option, command):
    """Returns ` (see --FLAG)` when the library option is a flag of `command`, else ""."""
    flag = flag_of(option)
    return f" (see --{flag})" if flag in command.flag_names else ""
