"""Command line: the flags of `python -m migrate`, which command reads which, and its exit codes.

Flags live here and only here. `main(argv)` parses them afresh, checks them
before TensorFlow is imported, and calls the library with keyword arguments,
so porting code can do the same without flags. Every failure is one line on
standard error: `error: ...`, exit 2 for usage errors (with a `--help` hint),
exit 1 for errors in the input; tracebacks only with --verbose.
"""

import contextlib
import dataclasses
import difflib
import json
import os
import sys
import traceback

from absl import flags

from migrate import demo
from migrate import errors
from migrate import estimator
from migrate import files
from migrate import pipeline
from migrate import progress
from migrate import verify_settings
from migrate import zoo
from migrate.batch import run as batch_run
from migrate.mapping import lint
from migrate.options import ConversionOptions
from migrate.output import atomic
from migrate.output import manifest
from migrate.output.report import inspect_summary
from migrate.planning import target as target_model
from migrate.planning.plan import side_by_side_lines
from migrate.source import locate
from migrate.source.roles import Role
from migrate.suggest import suggest
from migrate.verification import layers
from migrate.verification import parity
from migrate.verification import restore as restore_lib

PROGRAM = "python -m migrate"
SUCCESS_EXIT = 0
FAILURE_EXIT = 1
USAGE_EXIT = 2
INTERRUPTED_EXIT = 130
ERROR_PREFIX = "error: "
WARNING_PREFIX = "warning: "
HELP_ARGUMENTS = ("--help", "-h", "--helpshort", "--helpfull")
# Set for --builder: TensorFlow reads it once at import, and the legacy
# builders (tf-slim, rnn_cell) need Keras 2 behind `tf.keras`.
LEGACY_KERAS_VARIABLE = "TF_USE_LEGACY_KERAS"

INSPECT = "inspect"
PLAN = "plan"
CONVERT = "convert"
BATCH = "batch"
VERIFY = "verify"
CHECK = "check"
LINT = "lint"
SUGGEST = "suggest"
ZOO = "zoo"
DEMO = "demo"
PORT = "port"
ALL_COMMANDS = (INSPECT, PLAN, CONVERT, BATCH, VERIFY, CHECK, LINT, SUGGEST, PORT, ZOO, DEMO)
# Commands whose first seconds go to TensorFlow's import before anything is
# printed (a batch and the demo say what they start themselves).
_SLOW_TO_START = (INSPECT, PLAN, CONVERT, VERIFY, SUGGEST, PORT)

# The command line's own flags, apart from absl's global ones (logging), so
# that each command's --help lists exactly what it reads.
FLAGS = flags.FlagValues()
_COMMANDS_OF_FLAG = {}


def _define(define, name, default, help_text, *, commands, **kwargs):
    """Defines a flag in `FLAGS` and records the commands that read it."""
    _COMMANDS_OF_FLAG[name] = tuple(commands)
    return define(name, default, help=help_text, flag_values=FLAGS, **kwargs)


_CHECKPOINT = _define(
    flags.DEFINE_string, "checkpoint", None, "Legacy TF1 checkpoint prefix (e.g. "
    "train/model.ckpt-12000), a directory with a `checkpoint` state file, a TF1 SavedModel "
    "directory (Estimator export, simple_save, TF-Hub v1 module) or a frozen GraphDef "
    "(.pb, .pbtxt). For port: an Estimator model_dir or one of its exports.",
    commands=(INSPECT, PLAN, CONVERT, VERIFY, LINT, SUGGEST, PORT))
_TABLE = _define(flags.DEFINE_string, "table", None, "Mapping table (TOML); for verify, it names "
                 "the TF1 variables behind each Keras layer in the layer-by-layer comparison "
                 "(default: the table recorded in the converted output's manifest); plan "
                 "without one lists every variable beside the weights of its shape.",
                 commands=(PLAN, CONVERT, BATCH, LINT, VERIFY))
_MODEL = _define(
    flags.DEFINE_string, "model", None,
    "Keras model factory as module:callable; importing the module runs its code.",
    commands=(PLAN, CONVERT, BATCH, VERIFY, LINT, SUGGEST))
_ZOO = _define(
    flags.DEFINE_string, "zoo", None, "Built-in conversion (see `python -m migrate zoo`): "
    "supplies the table, the model and the verify settings unless given explicitly.",
    commands=(PLAN, CONVERT, BATCH, VERIFY, LINT, DEMO))
_OUTPUT = _define(flags.DEFINE_string, "output", None, "Output directory of the TF2 checkpoint "
                  "(suggest: the draft table's TOML file; port: the directory of model.py, "
                  "table.toml and the weights).", commands=(CONVERT, CHECK, SUGGEST, PORT))
_KEEP = _define(
    flags.DEFINE_enum, "keep", "trainable", "What the output carries: trainable weights only, "
    "or also the model's non-trainable weights (BatchNorm statistics).",
    commands=(PLAN, CONVERT, BATCH, SUGGEST), enum_values=["trainable", "model_state"])
_EMA = _define(flags.DEFINE_bool, "ema", False,
               "Read each variable's ExponentialMovingAverage shadow in its place.",
               commands=(PLAN, CONVERT, BATCH, VERIFY, SUGGEST))
_OVERWRITE = _define(flags.DEFINE_bool, "overwrite", False,
                     "Replace an existing output directory. For suggest: the draft table.",
                     commands=(CONVERT, SUGGEST, PORT))
_DRY_RUN = _define(flags.DEFINE_bool, "dry_run", False, "Plan and check only; write nothing.",
                   commands=(CONVERT,))
_ALLOW_NONFINITE = _define(
    flags.DEFINE_bool, "allow_nonfinite", False,
    "Carry NaN/Inf weights instead of refusing them (always reported).",
    commands=(PLAN, CONVERT, BATCH))
_BUILDER = _define(
    flags.DEFINE_string, "builder", None, "For a checkpoint without .meta: module:callable "
    "naming a function that builds the TF1 graph in the default graph, as the model's code "
    "did (importing the module runs its code), or a legacy_graphs name. Its graph gives the "
    "variable roles, and verification runs it, restored from the checkpoint.",
    commands=(INSPECT, PLAN, CONVERT, BATCH, LINT, SUGGEST, VERIFY))
_USE_META = _define(flags.DEFINE_bool, "use_meta", True,
                    "Read variable roles from the .meta graph.",
                    commands=(INSPECT, PLAN, CONVERT, BATCH, LINT, SUGGEST))
_TAGS = _define(
    flags.DEFINE_string, "tags", None, "For a TF1 SavedModel --checkpoint: the tag set of the "
    "MetaGraphDef to read, separated by commas (default: serve; a TF-Hub v1 module: the empty "
    "set, --tags=).", commands=(INSPECT, PLAN, CONVERT, BATCH, VERIFY, LINT, SUGGEST, PORT))
_SIGNATURE = _define(
    flags.DEFINE_string, "signature", None, "For a TF1 SavedModel --checkpoint: the "
    "SignatureDef whose inputs and outputs verification feeds and compares (default: "
    "serving_default; a TF-Hub v1 module: default).",
    commands=(CONVERT, BATCH, VERIFY, SUGGEST))
_JSON = _define(flags.DEFINE_bool, "json", False,
                "Print the JSON report instead of the summary.", commands=ALL_COMMANDS)
_REPORT = _define(flags.DEFINE_string, "report", None,
                  "Also write the JSON report to this file.", commands=ALL_COMMANDS)
_VERBOSE = _define(flags.DEFINE_bool, "verbose", False, "Show tracebacks and TensorFlow's logs.",
                   commands=ALL_COMMANDS)
_CONVERTED = _define(flags.DEFINE_string, "converted", None, "The converted output directory.",
                     commands=(VERIFY,))
_EXPORT = _define(
    flags.DEFINE_list, "export", [], "Also write the converted model in these formats inside the "
    "output directory: any of weights_h5 (model.weights.h5), keras (model.keras), saved_model "
    "(saved_model/), separated by commas.", commands=(CONVERT, BATCH, PORT))
_VERIFY = _define(
    flags.DEFINE_bool, "verify", False, "Before the output is put in place, restore it into a "
    "fresh model and compare it with the legacy graph (the input flags as for verify); only a "
    "passing conversion is kept.", commands=(CONVERT, BATCH))
_KEEP_FAILED = _define(flags.DEFINE_bool, "keep_failed", False,
                       "With --verify: keep an output that fails verification (still exit 1).",
                       commands=(CONVERT, BATCH))
# Verification inputs: verify, convert/batch with --verify, and suggest proving its draft.
_PARITY_COMMANDS = (VERIFY, CONVERT, BATCH, SUGGEST)
# Library options spelled otherwise on the command line, for the hints of errors.
_FLAG_OF_OPTION = {"feeds": "feed", "input_tensors": "input_tensor",
                   "input_shapes": "input_shape", "inputs_file": "inputs",
                   "input_pairs": "input_tensor", "output_pairs": "output_tensor",
                   "keras_feeds": "keras_feed"}
# The verification options whose fit only the legacy graph can tell.
_GRAPH_INPUT_OPTIONS = frozenset({"output_tensor", "input_tensor", "input_tensors",
                                  "input_shape", "input_shapes", "input_max", "feeds",
                                  "input_pairs", "output_pairs", "keras_feeds",
                                  "inputs_file", "legacy_dropout"})
_INPUT_TENSOR = _define(
    flags.DEFINE_string, "input_tensor", None, "Legacy input placeholders fed to the Keras "
    "model's inputs in order, separated by commas (e.g. input_ids:0,token_type_ids:0), or "
    "paired with them by name as KERAS_INPUT=TENSOR (e.g. "
    "token_ids=input_ids:0,segment_ids=segment_ids:0); default: the placeholders the output "
    "depends on.", commands=_PARITY_COMMANDS)
_OUTPUT_TENSOR = _define(
    flags.DEFINE_string, "output_tensor", None, "Legacy output tensor, e.g. logits:0; or "
    "several compared at once as KERAS_OUTPUT=TENSOR separated by commas (a dict output's key, "
    "an output layer's name or an index), e.g. "
    "sequence_output=sequence_output:0,pooled_output=pooled_output:0.",
    commands=_PARITY_COMMANDS)
_KERAS_FEED = _define(
    flags.DEFINE_multi_string, "keras_feed", [], "KERAS_INPUT=VALUE: fill a Keras input no "
    "placeholder feeds with a constant at the shape of the paired inputs (repeatable), e.g. "
    "--keras_feed=padding_mask=1.", commands=_PARITY_COMMANDS)
_INPUT_SHAPE = _define(
    flags.DEFINE_string, "input_shape", None, "Input shapes without the batch dimension, one per "
    "input separated by ';' (e.g. '10,1;10,1'); one shape applies to all.",
    commands=_PARITY_COMMANDS)
_INPUT_MAX = _define(
    flags.DEFINE_string, "input_max", None, "Integer inputs are drawn from [0, input_max): one "
    "bound per input separated by ';' (e.g. '50;2'); one applies to all.",
    commands=_PARITY_COMMANDS)
_FEED = _define(
    flags.DEFINE_multi_string, "feed", [], "NAME=VALUE: fill a placeholder the Keras model does "
    "not take with a constant at its declared shape (repeatable), e.g. --feed=istate:0=0 "
    "--feed=keep_prob:0=1.0 --feed=is_training:0=false.", commands=_PARITY_COMMANDS)
_LEGACY_DROPOUT = _define(
    flags.DEFINE_enum, "legacy_dropout", "off", "off: run the legacy graph in inference mode: "
    "when two runs as saved differ, dropout's constant keep probabilities "
    "(DropoutWrapper(output_keep_prob=0.75) inside an RNN loop, which no --feed reaches) are set "
    "to 1, each named in the report; as_saved: run it as saved. Either way a graph whose two "
    "runs differ is refused, its random ops named.",
    commands=_PARITY_COMMANDS, enum_values=["off", "as_saved"])
_INPUTS = _define(flags.DEFINE_string, "inputs", None, "An .npz of real arrays by tensor name, "
                  "for inputs and feeds alike (or by Keras input name, for Keras inputs no "
                  "placeholder feeds).", commands=_PARITY_COMMANDS)
_BATCH_SIZE = _define(flags.DEFINE_integer, "batch_size", 2, "Rows in the random batch.",
                      commands=(*_PARITY_COMMANDS, DEMO))
_SEED = _define(flags.DEFINE_integer, "seed", 0, "Seed of the random batch.",
                commands=(*_PARITY_COMMANDS, DEMO))
_TOLERANCE = _define(flags.DEFINE_float, "tolerance", None, "Largest accepted relative "
                     "difference (default: the zoo entry's, else 1e-5).",
                     commands=_PARITY_COMMANDS)
_LAYERS = _define(flags.DEFINE_bool, "layers", False, "Compare layer by layer and name the first "
                  "layer that diverges (done anyway when parity fails).", commands=(VERIFY,))
_PLOT = _define(flags.DEFINE_string, "plot", None, "Write a PNG of the difference per layer "
                "(needs the `plot` extra: pip install 'tf1-migrate[plot]').", commands=(VERIFY,))
_WORKDIR = _define(flags.DEFINE_string, "workdir", "demo_output", "Directory for demo's files.",
                   commands=(DEMO,))
_INPUT_DIR = _define(flags.DEFINE_string, "input_dir", None,
                     "Directory scanned recursively for legacy checkpoint prefixes.",
                     commands=(BATCH,))
_OUTPUT_DIR = _define(
    flags.DEFINE_string, "output_dir", None, "Output root; each checkpoint gets a converted "
    "directory at its relative path (run1/model.ckpt-1000 -> OUTPUT_DIR/run1/model.ckpt-1000/).",
    commands=(BATCH,))
_LATEST_ONLY = _define(
    flags.DEFINE_bool, "latest_only", False,
    "Per directory, only the newest entry of its `checkpoint` state file.", commands=(BATCH,))
_WORKERS = _define(
    flags.DEFINE_integer, "workers", 1, "Worker processes converting in parallel (0: in this "
    "process, without crash isolation).", commands=(BATCH,), lower_bound=0)
_FORCE = _define(flags.DEFINE_bool, "force", False,
                 "Convert again outputs that are already up to date.", commands=(BATCH,))
_RETRY_FAILED = _define(
    flags.DEFINE_bool, "retry_failed", False, "Convert again checkpoints that failed before for "
    "a reason of their own (damaged, a plan problem, a failed verification) although neither "
    "they nor the table, model, options or toolkit version changed; by default a rerun reports "
    "them as failed before, unchanged, and starts no worker for them.", commands=(BATCH,))
_RUNNER = _define(
    flags.DEFINE_enum, "runner", "local", "Local worker processes, or an Apache Beam pipeline "
    "(pip install 'tf1-migrate[beam]').", commands=(BATCH,), enum_values=["local", "beam"])
_HASH_SOURCES = _define(
    flags.DEFINE_bool, "hash_sources", False, "Record every source file's full SHA-256 in the "
    "manifest and, on a rerun, compare them (default: a fingerprint of the checkpoint's "
    "metadata, which reads no tensor data).", commands=(CONVERT, BATCH))
_RECHECK_OUTPUTS = _define(
    flags.DEFINE_bool, "recheck_outputs", False, "On a rerun, re-hash the outputs that look up "
    "to date instead of checking their files and sizes.", commands=(BATCH,))
_TIMEOUT_PER_CHECKPOINT = _define(
    flags.DEFINE_float, "timeout_per_checkpoint", 1800.0, "A worker that makes no progress for "
    "this many seconds is killed and its checkpoint reported as timed out.", commands=(BATCH,),
    lower_bound=0.0)
_BEAM_OPTIONS = _define(
    flags.DEFINE_string, "beam_options", "", "With --runner=beam: Beam pipeline arguments in one "
    "string, e.g. \"--runner=DataflowRunner --project=P --region=R "
    "--temp_location=gs://B/tmp\"; without --runner: Beam's local FnApiRunner, in this "
    "process.", commands=(BATCH,))


_VOCABULARY_DIR = _define(
    flags.DEFINE_list, "vocabulary_dir", [], "Directories holding the vocabulary files an "
    "Estimator's graph names by a path of the machine that trained it (found by file name; "
    "an export's assets/ is searched anyway), separated by commas.", commands=(PORT,))


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
        if self.unless_signature and _checkpoint_has_signature():
            return True
        return any(all(FLAGS[name].value not in (None, "") for name in group)
                   for group in self.alternatives)

    def describe(self):
        text = ", or ".join(" and ".join(f"--{name}" for name in group)
                            for group in self.alternatives)
        if self.unless_signature:
            text += " (unless --checkpoint is a SavedModel: its signature names the tensors)"
        return text if self.unless is None else f"{text} (unless --{self.unless})"


def _checkpoint_has_signature():
    """Whether --checkpoint names a TF1 SavedModel, whose signature names verify's tensors.

    Told from the file names alone: nothing is imported or parsed.
    """
    return (_CHECKPOINT.value is not None
            and locate.source_kind(_CHECKPOINT.value)[0] == locate.KIND_SAVED_MODEL)


def _needs(*names):
    return Requirement(((*names,),))


_TABLE_AND_MODEL = Requirement((("table", "model"), ("zoo",)))


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
        return sorted(name for name, commands in _COMMANDS_OF_FLAG.items()
                      if self.name in commands)

    def imports_tensorflow(self):
        """Whether this command line imports TensorFlow (quietly) before `run`."""
        needs = self.needs_tensorflow
        return bool(needs() if callable(needs) else needs)


@contextlib.contextmanager
def _tensorflow_imported_quietly():
    """Runs the body, then imports TensorFlow; its start-up chatter hidden unless --verbose.

    Standard error is hidden for the body too, so the body must print nothing:
    opening a checkpoint there starts its read-ahead (and its TensorFlow-free
    `.index` checks) before the 3 s import instead of after it.
    """
    if _VERBOSE.value or "tensorflow" in sys.modules:
        yield
        import tensorflow  # noqa: F401
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # The C++ start-up lines ignore TF_CPP_MIN_LOG_LEVEL, so standard error is
    # silenced at the file-descriptor level for the import only. Listing the
    # devices there too: on a machine without a GPU, the first use of the
    # devices otherwise logs a failed `cuInit` in the middle of the command.
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            yield
            import tensorflow as tf
            tf.config.list_physical_devices()
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
    tf.get_logger().setLevel("ERROR")
    from absl import logging
    logging.set_verbosity(logging.WARNING)


def _import_tensorflow_quietly():
    """Imports TensorFlow with its start-up chatter hidden, unless --verbose."""
    with _tensorflow_imported_quietly():
        pass


def _zoo_entry():
    """Returns the --zoo entry, or None; its model module imports Keras, so TensorFlow quietly."""
    if _ZOO.value is None:
        return None
    _import_tensorflow_quietly()
    return zoo.get(_ZOO.value)


def _check_zoo_name():
    """Lets the library refuse an unknown zoo name before anything imports TensorFlow."""
    if _ZOO.value is not None and _ZOO.value not in zoo.available():
        try:
            zoo.get(_ZOO.value)  # The library's message names the closest entries.
        except ValueError as error:  # ArgumentError, or a plain ValueError before the sweep.
            raise UsageError(str(error)) from None


def _table_and_model():
    """Returns the table and model flags, each filled from --zoo when not given.

    Without importing the entry's model module: a batch hands the factory's
    name to its workers and imports neither Keras nor TensorFlow itself.
    """
    if _ZOO.value is None:
        return _TABLE.value, _MODEL.value
    return (_TABLE.value or zoo.table_path(_ZOO.value),
            _MODEL.value or zoo.model_factory(_ZOO.value))


def _options():
    """Returns the one `ConversionOptions` of this command line, built from the flags."""
    return ConversionOptions(keep=_KEEP.value, ema=_EMA.value,
                             allow_nonfinite=_ALLOW_NONFINITE.value, use_meta=_USE_META.value,
                             builder=_BUILDER.value, exports=tuple(_EXPORT.value),
                             verify=_verify_settings() if _VERIFY.value else None,
                             tags=_TAGS.value, signature=_SIGNATURE.value)


def _verify_settings():
    """Returns the `VerifySettings` of the input flags, on top of the zoo entry's defaults."""
    given = {}
    if _INPUT_TENSOR.value is not None:
        given["input_tensor"] = _INPUT_TENSOR.value
    if _OUTPUT_TENSOR.value is not None:
        given["output_tensor"] = _OUTPUT_TENSOR.value
    if _INPUT_SHAPE.value is not None:
        given["input_shapes"] = verify_settings.parse_input_shapes(_INPUT_SHAPE.value)
    if _INPUT_MAX.value is not None:
        given["input_max"] = verify_settings.parse_input_max(_INPUT_MAX.value)
    if _FEED.value:
        given["feeds"] = dict(verify_settings.parse_feed(text) for text in _FEED.value)
    if _KERAS_FEED.value:
        given["keras_feeds"] = dict(verify_settings.parse_feed(text)
                                    for text in _KERAS_FEED.value)
    if _INPUTS.value is not None:
        given["inputs"] = _INPUTS.value
    if _TOLERANCE.value is not None:
        given["tolerance"] = _TOLERANCE.value
    defaults = {}
    entry = _zoo_entry()
    if entry is not None:
        defaults = dict(entry.verify)
        if _checkpoint_has_signature():
            # The entry's tensors are its builder's; a SavedModel's signature names its own.
            defaults.pop("input_tensor", None)
            defaults.pop("output_tensor", None)
        # The entry's inputs describe its own placeholders: flags naming other
        # inputs replace them as a whole.
        if "input_tensor" in given or "input_shapes" in given:
            defaults.pop("input_shape", None)
        if "input_tensor" in given:
            defaults.pop("input_max", None)
            # The entry's constants stay for the Keras inputs the flags do not pair.
            paired = {keras for keras, _ in verify_settings.parse_pairs(
                given["input_tensor"], "input_tensor") or ()}
            defaults["keras_feeds"] = {name: value for name, value
                                       in defaults.get("keras_feeds", {}).items()
                                       if name not in paired}
    return parity.settings_from_arguments(
        **{**defaults, **given}, batch_size=_BATCH_SIZE.value, seed=_SEED.value,
        # A plot is of the layers: --plot compares them even when the outputs agree.
        layers=_LAYERS.value or _PLOT.value is not None, keep_failed=_KEEP_FAILED.value,
        legacy_dropout=_LEGACY_DROPOUT.value)


def _open_checkpoint(options, *, read_ahead=False):
    return pipeline.open_checkpoint(_CHECKPOINT.value, options, read_ahead=read_ahead)


def _emit(document, summary):
    if _REPORT.value:
        temporary = f"{_REPORT.value}.partial"
        with open(temporary, "w", encoding="utf-8") as file:
            json.dump(document, file, indent=2, sort_keys=True)
            file.write("\n")
        os.replace(temporary, _REPORT.value)
    _status.clear()
    print(json.dumps(document, indent=2, sort_keys=True) if _JSON.value else summary)


def command_inspect(options):
    description = pipeline.inspect(_open_checkpoint(options))
    _emit(description, inspect_summary(description))
    return SUCCESS_EXIT


@contextlib.contextmanager
def _graph_misfits_as_input_errors():
    """Turns verification arguments that the legacy graph refuses into input errors (exit 1).

    The verification flags were parsed before TensorFlow was imported; whether
    they fit the graph (a placeholder left without a feed, a tensor it does not
    have) shows only once it is read, as a table's unmapped variables do, so
    that is an error in the input, with the flag's hint, not a usage error.
    """
    try:
        yield
    except errors.ArgumentError as error:
        if error.option not in _GRAPH_INPUT_OPTIONS:
            raise
        raise errors.MigrateError(str(error), option=error.option) from error


def _convert(options, dry_run):
    table, model = _table_and_model()
    with _graph_misfits_as_input_errors():
        # Opened before TensorFlow is imported (a --builder's graph, the
        # user's code, was built after the import, in `_run`).
        with _tensorflow_imported_quietly():
            checkpoint = _open_checkpoint(options, read_ahead=not dry_run)
        report = pipeline.convert(
            checkpoint, table, model,
            None if dry_run else _OUTPUT.value,
            options=options, overwrite=_OVERWRITE.value, dry_run=dry_run,
            show_progress=not _JSON.value, model_name=model, hash_sources=_HASH_SOURCES.value)
    # On standard error too, even with --json: the output directory was changed.
    _status.clear()
    for note in report.recovered:
        print(f"{WARNING_PREFIX}{note}", file=sys.stderr)
    _emit(report.to_json(), report.summary())
    return SUCCESS_EXIT


def command_plan(options):
    # Without --table (and --zoo), the plan lists every variable beside the weights of its
    # shape: where a table written by hand starts.
    return _convert(options, dry_run=True)


def command_convert(options):
    return _convert(options, dry_run=_DRY_RUN.value)


def _converts_with_builder():
    return _BUILDER.value is not None


def _check_batch():
    if _RUNNER.value == "beam" and FLAGS["workers"].present:
        raise UsageError("--workers is for --runner=local; give Beam its own worker options in "
                         "--beam_options.")
    if _RUNNER.value == "beam" and FLAGS["timeout_per_checkpoint"].present:
        raise UsageError("--timeout_per_checkpoint is for --runner=local; Beam retries and times "
                         "out work items itself.")
    if not _TIMEOUT_PER_CHECKPOINT.value > 0:
        # The library's own message; absl's lower bound is inclusive.
        batch_run.check_timeout(_TIMEOUT_PER_CHECKPOINT.value)
    _check_parity_flags()


def _batch_needs_tensorflow():
    """Whether a batch imports TensorFlow in this process before it starts.

    It converts in this process only with --workers=0 or --runner=beam, and
    reaches URLs (gs://...) only through `tf.io.gfile`. Otherwise only its
    worker processes import TensorFlow, and a rerun with every output up to
    date imports it nowhere: it starts and ends in a fraction of a second.
    """
    if _WORKERS.value == 0 or _RUNNER.value == "beam":
        return True
    paths = (_INPUT_DIR.value, _OUTPUT_DIR.value, _TABLE.value, _REPORT.value)
    return any(files.is_url(path) for path in paths if path)


def command_batch(options):
    import shlex

    table, model = _table_and_model()
    try:
        report = batch_run.convert_batch(
            _INPUT_DIR.value, _OUTPUT_DIR.value, table, model, latest_only=_LATEST_ONLY.value,
            workers=_WORKERS.value, force=_FORCE.value, options=options, runner=_RUNNER.value,
            beam_options=shlex.split(_BEAM_OPTIONS.value), show_progress=not _JSON.value,
            verbose=_VERBOSE.value, hash_sources=_HASH_SOURCES.value,
            recheck_outputs=_RECHECK_OUTPUTS.value, retry_failed=_RETRY_FAILED.value,
            timeout_per_checkpoint=_TIMEOUT_PER_CHECKPOINT.value)
    except batch_run.BatchInterrupted as interrupted:
        # The partial report is on disk already; show it before exiting.
        _emit(interrupted.report.to_json(), interrupted.report.summary())
        raise
    _emit(report.to_json(), report.summary())
    return SUCCESS_EXIT if report.ok else FAILURE_EXIT


def command_verify(options):
    # verify reads the legacy graph itself (its .meta, --builder's graph, a SavedModel's with
    # --tags and --signature, a frozen graph); --ema is its one conversion option.
    settings = _verify_settings()
    entry = _zoo_entry()
    # A factory that takes the checkpoint resolves the prefix or directory itself.
    model = target_model.load_model(_MODEL.value or entry.model_factory,
                                    checkpoint=_CHECKPOINT.value)
    restored = restore_lib.restore(model, _CONVERTED.value)
    with _graph_misfits_as_input_errors():
        report = pipeline.verify(_CHECKPOINT.value, model, settings=settings, ema=_EMA.value,
                                 table=_TABLE.value, converted=_CONVERTED.value,
                                 options=options)
    lines = [restored.summary(), report.summary()]
    if _PLOT.value and report.layers is not None:
        layers.plot(report.layers, _PLOT.value, tolerance=report.tolerance)
        lines.append(f"plot: {_PLOT.value}")
    document = report.to_json()
    document["restore"] = {"restored": len(restored.restored), "unchanged": restored.unchanged}
    _emit(document, "\n".join(lines))
    return SUCCESS_EXIT if report.passed else FAILURE_EXIT


def _check_parity_flags():
    """convert and batch: the verification flags go with --verify, which needs an output tensor."""
    if not _VERIFY.value:
        for flag in (_KEEP_FAILED, _INPUT_TENSOR, _OUTPUT_TENSOR, _INPUT_SHAPE, _INPUT_MAX,
                     _FEED, _KERAS_FEED, _INPUTS, _BATCH_SIZE, _SEED, _TOLERANCE,
                     _LEGACY_DROPOUT):
            if FLAGS[flag.name].present:
                raise UsageError(f"--{flag.name} is for --verify.")
        return
    if _OUTPUT_TENSOR.value is None and _ZOO.value is None and not _checkpoint_has_signature():
        raise UsageError("--verify needs --output_tensor, or --zoo (or a SavedModel "
                         "--checkpoint, whose signature names the tensors).")
    _check_verify_inputs()


def _check_verify_inputs():
    """Parses the input flags before anything is imported, so their errors are usage errors."""
    if _INPUT_SHAPE.value is not None:
        verify_settings.parse_input_shapes(_INPUT_SHAPE.value)
    if _INPUT_MAX.value is not None:
        verify_settings.parse_input_max(_INPUT_MAX.value)
    for text in _FEED.value + _KERAS_FEED.value:
        verify_settings.parse_feed(text)
    for flag in (_INPUT_TENSOR, _OUTPUT_TENSOR):
        if flag.value is not None:
            verify_settings.parse_pairs(flag.value, flag.name)


def command_check(options):
    del options  # A converted output carries its options in its manifest.
    result = manifest.check(_OUTPUT.value)
    _emit(result.to_json(), result.summary())
    return SUCCESS_EXIT if result.ok else FAILURE_EXIT


def command_lint(options):
    table, model = _table_and_model()
    names = checkpoint = None
    if _CHECKPOINT.value:
        _import_tensorflow_quietly()
        checkpoint = _open_checkpoint(options)
        # Slots, shadows and counters never go through the table.
        names = [name for name, variable in checkpoint.variables.items()
                 if variable.role in (Role.TRAINABLE, Role.MODEL_STATE, Role.UNKNOWN)]
    result = lint.lint_table(table, names)
    document, summary, ok = result.to_json(), result.summary(), result.ok
    if model is not None and result.ok:
        # With the model, what the table leaves out: sources beside the targets of their shape.
        conversion_plan = pipeline.plan(checkpoint, table, model, options=options)
        lines = conversion_plan.side_by_side_lines()
        document["side_by_side"] = [
            [None if source is None else source.source, None if target is None else target.target]
            for source, target in conversion_plan.side_by_side()]
        document["plan_problems"] = [problem.describe() for problem in conversion_plan.problems]
        summary = "\n".join([summary, f"plan: {len(conversion_plan.problems)} problem(s)", *lines])
        ok = not conversion_plan.problems
    _emit(document, summary)
    return SUCCESS_EXIT if ok else FAILURE_EXIT


def _check_lint():
    """lint plans with the model only against a checkpoint's variables."""
    if (_MODEL.value is not None or _ZOO.value is not None) and _CHECKPOINT.value is None:
        raise UsageError("lint's --model (or --zoo) needs --checkpoint: the plan pairs its "
                         "variables with the model's weights.")


def command_suggest(options):
    settings = (_verify_settings() if _OUTPUT_TENSOR.value is not None
                or _checkpoint_has_signature() else None)
    report = suggest(_open_checkpoint(options), _MODEL.value, output=_OUTPUT.value,
                             overwrite=_OVERWRITE.value, options=options, verify=settings)
    lines = [report.summary()]
    if not report.ok:
        lines.append("unresolved (marked in the draft; edit it, or the model, and run again):")
        lines += [f"  - {line}" for line in report.unresolved]
    _emit(report.to_json(), "\n".join(lines))
    return SUCCESS_EXIT if report.ok else FAILURE_EXIT


def _check_suggest():
    """suggest runs parity only with an output tensor; the other input flags need it."""
    if _OUTPUT_TENSOR.value is None and not _checkpoint_has_signature():
        for flag in (_INPUT_TENSOR, _INPUT_SHAPE, _INPUT_MAX, _FEED, _KERAS_FEED, _INPUTS,
                     _BATCH_SIZE, _SEED, _TOLERANCE, _LEGACY_DROPOUT):
            if FLAGS[flag.name].present:
                raise UsageError(f"--{flag.name} is for parity, which needs --output_tensor.")
    _check_verify_inputs()


def command_port(options):
    with _tensorflow_imported_quietly():
        checkpoint = pipeline.open_checkpoint(estimator.newest_export(_CHECKPOINT.value), options)
    report = estimator.port(checkpoint, _OUTPUT.value, overwrite=_OVERWRITE.value,
                            vocabulary_dirs=tuple(_VOCABULARY_DIR.value), options=options,
                            show_progress=not _JSON.value)
    _emit(report.to_json(), report.summary())
    return SUCCESS_EXIT


def command_zoo(options):
    del options  # Lists the entries only.
    entries = [zoo.get(name) for name in zoo.available()]
    document = [{"name": entry.name, "description": entry.description, "table": entry.table_path,
                 "model": entry.model_factory, "verify": entry.verify} for entry in entries]
    _emit(document, "\n".join(f"{entry.name:<22} {entry.description}" for entry in entries))
    return SUCCESS_EXIT


def command_demo(options):
    del options  # The demo converts with its own options, twice.
    result = demo.run(zoo_name=_ZOO.value or "resnet_v1_50", workdir=_WORKDIR.value,
                      overwrite=True, batch_size=_BATCH_SIZE.value, seed=_SEED.value)
    _emit(result, demo.summary(result))
    return SUCCESS_EXIT if result["passed"] else FAILURE_EXIT


COMMANDS = {command.name: command for command in (
    Command(INSPECT, "list a legacy checkpoint's variables, shapes, bytes and roles",
            command_inspect, (_needs("checkpoint"),)),
    Command(PLAN, "check a conversion without writing (unmapped, unfilled, shapes, collisions)",
            command_plan, (_needs("checkpoint"), Requirement((("model",), ("zoo",))))),
    Command(CONVERT, "write a TF2 checkpoint holding only the mapped weights (+ manifest.json)",
            command_convert, (_needs("checkpoint"), Requirement((("output",),), unless="dry_run"),
                              _TABLE_AND_MODEL), check=_check_parity_flags,
            needs_tensorflow=_converts_with_builder),
    Command(BATCH, "convert every checkpoint under a directory (resumable, crash-isolated "
            "workers)", command_batch, (_needs("input_dir"), _needs("output_dir"),
                                        _TABLE_AND_MODEL), check=_check_batch,
            needs_tensorflow=_batch_needs_tensorflow),
    Command(VERIFY, "run the legacy graph and the restored Keras model, compare outputs",
            command_verify, (_needs("checkpoint"), _needs("converted"),
                             Requirement((("model",), ("zoo",))),
                             Requirement((("output_tensor",), ("zoo",)),
                                         unless_signature=True)),
            check=_check_verify_inputs),
    Command(CHECK, "re-hash a converted output against its manifest", command_check,
            (_needs("output"),)),
    Command(LINT, "check a mapping table (TensorFlow only with --checkpoint)", command_lint,
            (Requirement((("table",), ("zoo",))),), check=_check_lint, needs_tensorflow=False),
    Command(SUGGEST, "draft the mapping table from the checkpoint and the model, and prove it",
            command_suggest, (_needs("checkpoint"), _needs("model"), _needs("output")),
            check=_check_suggest),
    Command(PORT, "write a canned Estimator (model_dir or export) as Keras code, its table and "
            "its weights", command_port, (_needs("checkpoint"), _needs("output"))),
    Command(ZOO, "list the built-in conversions", command_zoo),
    Command(DEMO, "build a legacy checkpoint, convert it, verify it (the main job)",
            command_demo),
)}

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
              and command.name not in _COMMANDS_OF_FLAG[name]]
    if unused:
        users = ", ".join(_COMMANDS_OF_FLAG[unused[0]])
        raise UsageError(f"`{command.name}` does not use --{unused[0]} (a flag of {users}).")
    missing = [requirement.describe() for requirement in command.requirements
               if not requirement.is_met()]
    if missing:
        raise UsageError(f"`{command.name}` needs {'; '.join(missing)}.")
    if command.check is not None:
        command.check()
    _check_zoo_name()


def _print_error(message, hint=""):
    _status.clear()
    print(f"{ERROR_PREFIX}{message}{hint}", file=sys.stderr)


def _flag_of(option):
    """Returns the flag name of a library option (`feeds` -> `feed`)."""
    return _FLAG_OF_OPTION.get(option, option)


def _flag_hint(option, command):
    """Returns ` (see --FLAG)` when the library option is a flag of `command`, else ""."""
    flag = _flag_of(option)
    return f" (see --{flag})" if flag in command.flag_names else ""


def _usage_hint(help_command, option=None, command=None):
    flag = _flag_of(option)
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
        options = _options()  # Its own checks raise ArgumentError.
    except UsageError as error:
        _print_error(error, _usage_hint(help_command))
        return USAGE_EXIT
    except errors.ArgumentError as error:
        _print_error(error, _usage_hint(help_command, error.option, COMMANDS[name]))
        return USAGE_EXIT
    return _run(COMMANDS[name], options, help_command)


# The running command's status line (on a terminal only); everything that
# prints erases it first.
_status = progress.StatusLine(enabled=False)


def _run(command, options, help_command):
    """Runs a checked command; turns what it raises into one line and an exit code."""
    global _status
    _status = progress.StatusLine(enabled=command.name in _SLOW_TO_START and not _JSON.value
                                  and not _VERBOSE.value)
    _status.show(f"{command.name}: starting (TensorFlow import, reading the checkpoint) ...")
    try:
        if _BUILDER.value:
            os.environ[LEGACY_KERAS_VARIABLE] = "1"
        if command.imports_tensorflow():
            _import_tensorflow_quietly()
        if _REPORT.value:
            # Checked before any work: a report that cannot be written after
            # the output was would leave an output a rerun refuses to replace.
            atomic.check_file_destination(_REPORT.value, option="report")
        return command.run(options)
    except errors.ArgumentError as error:
        _print_verbose_traceback(error)
        _print_error(error, _usage_hint(help_command, error.option, command))
        return USAGE_EXIT
    except errors.MigrateError as error:
        _print_verbose_traceback(error)
        _print_error(error, _flag_hint(error.option, command))
        if isinstance(error, errors.PlanError):
            print(error.details(), file=sys.stderr)
            # What a table written by hand still needs: each source beside its likely target.
            for line in side_by_side_lines(error.problems):
                print(line, file=sys.stderr)
        return FAILURE_EXIT
    except KeyboardInterrupt:
        _print_error("interrupted")
        return INTERRUPTED_EXIT
    except Exception as error:  # A bug or an unexpected TensorFlow failure.
        _print_verbose_traceback(error)
        _print_error(f"{type(error).__name__}: {errors.first_line(error)} "
                     f"(run with --verbose for the traceback)")
        return FAILURE_EXIT
    finally:
        _status.clear()


def _print_verbose_traceback(error):
    """With --verbose, prints the traceback, and that of the user's own code if it failed.

    A library error raised while importing or calling the user's model module
    may hide the original exception (`raise ... from None`); its traceback
    points into the user's code, which is what they need to see, so it is
    printed first. A cause chained with `from error` prints with the error.
    """
    if not _VERBOSE.value:
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
