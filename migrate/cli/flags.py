"""The command line's flags: every flag of `python -m migrate`, and which commands read it.

Flags live here and only here; the library never names one. Each flag is
defined in `FLAGS` (not absl's global flags, so that a command's `--help`
lists exactly what it reads) with the commands that read it, which is how a
flag given to a command that does not read it becomes a usage error. The
other modules of `migrate.cli` read the parsed values as `FLAGS.name`.
"""

from absl import flags

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
_SLOW_TO_START = (INSPECT, PLAN, CONVERT, VERIFY, SUGGEST)

# The command line's own flags, apart from absl's global ones (logging), so
# that each command's --help lists exactly what it reads.
FLAGS = flags.FlagValues()
COMMANDS_OF_FLAG = {}


def define(define, name, default, help_text, *, commands, **kwargs):
    """Defines a flag in `FLAGS` and records the commands that read it."""
    COMMANDS_OF_FLAG[name] = tuple(commands)
    return define(name, default, help=help_text, flag_values=FLAGS, **kwargs)


define(
    flags.DEFINE_string, "checkpoint", None, "Legacy TF1 checkpoint prefix (e.g. "
    "train/model.ckpt-12000), a directory with a `checkpoint` state file, a TF1 SavedModel "
    "directory (Estimator export, simple_save, TF-Hub v1 module) or a frozen GraphDef "
    "(.pb, .pbtxt). For port: an Estimator model_dir or one of its exports.",
    commands=(INSPECT, PLAN, CONVERT, VERIFY, LINT, SUGGEST, PORT))
define(flags.DEFINE_string, "table", None, "Mapping table (TOML); for verify, it names "
       "the TF1 variables behind each Keras layer in the layer-by-layer comparison "
       "(default: the table recorded in the converted output's manifest); plan "
       "without one lists every variable beside the weights of its shape.",
       commands=(PLAN, CONVERT, BATCH, LINT, VERIFY))
define(
    flags.DEFINE_string, "model", None,
    "Keras model factory as module:callable; importing the module runs its code.",
    commands=(PLAN, CONVERT, BATCH, VERIFY, LINT, SUGGEST))
define(
    flags.DEFINE_string, "zoo", None, "Built-in conversion (see `python -m migrate zoo`): "
    "supplies the table, the model and the verify settings unless given explicitly.",
    commands=(PLAN, CONVERT, BATCH, VERIFY, LINT, DEMO))
define(flags.DEFINE_string, "output", None, "Output directory of the TF2 checkpoint "
       "(suggest: the draft table's TOML file; port: the directory of model.py, "
       "table.toml and the weights).", commands=(CONVERT, CHECK, SUGGEST, PORT))
define(
    flags.DEFINE_enum, "keep", "trainable", "What the output carries: trainable weights only, "
    "or also the model's non-trainable weights (BatchNorm statistics).",
    commands=(PLAN, CONVERT, BATCH, SUGGEST), enum_values=["trainable", "model_state"])
define(flags.DEFINE_bool, "ema", False,
       "Read each variable's ExponentialMovingAverage shadow in its place.",
       commands=(PLAN, CONVERT, BATCH, VERIFY, SUGGEST))
define(flags.DEFINE_bool, "overwrite", False,
       "Replace an existing output directory. For suggest: the draft table.",
       commands=(CONVERT, SUGGEST, PORT))
define(flags.DEFINE_bool, "dry_run", False, "Plan and check only; write nothing.",
       commands=(CONVERT,))
define(
    flags.DEFINE_bool, "allow_nonfinite", False,
    "Carry NaN/Inf weights instead of refusing them (always reported).",
    commands=(PLAN, CONVERT, BATCH))
define(
    flags.DEFINE_string, "builder", None, "For a checkpoint without .meta (or in place of its "
    ".meta, said in the report): module:callable "
    "naming a function that builds the TF1 graph in the default graph, as the model's code "
    "did (importing the module runs its code), or a legacy_graphs name. Its graph gives the "
    "variable roles, and verification runs it, restored from the checkpoint.",
    commands=(INSPECT, PLAN, CONVERT, BATCH, LINT, SUGGEST, VERIFY))
define(flags.DEFINE_bool, "use_meta", True,
       "Read variable roles from the .meta graph.",
       commands=(INSPECT, PLAN, CONVERT, BATCH, LINT, SUGGEST))
define(
    flags.DEFINE_string, "tags", None, "For a TF1 SavedModel --checkpoint: the tag set of the "
    "MetaGraphDef to read, separated by commas (default: serve; a TF-Hub v1 module: the empty "
    "set, --tags=; either way, the only tag set there is, said in the report).",
    commands=(INSPECT, PLAN, CONVERT, BATCH, VERIFY, LINT, SUGGEST, PORT))
define(
    flags.DEFINE_string, "signature", None, "For a TF1 SavedModel --checkpoint: the "
    "SignatureDef whose inputs and outputs verification feeds and compares (default: "
    "serving_default; a TF-Hub v1 module: default; port: predict).",
    commands=(CONVERT, BATCH, VERIFY, SUGGEST, PORT))
define(flags.DEFINE_bool, "json", False,
       "Print the JSON report instead of the summary.", commands=ALL_COMMANDS)
define(flags.DEFINE_string, "report", None,
       "Also write the JSON report to this file.", commands=ALL_COMMANDS)
define(flags.DEFINE_bool, "verbose", False, "Show tracebacks and TensorFlow's logs.",
       commands=ALL_COMMANDS)
define(flags.DEFINE_bool, "graph", False, "Also list the legacy graph's placeholders "
       "(name, dtype, shape) and candidate outputs (tensors no forward op consumes, the "
       "last softmax, logits, the last layer norm): what --input_tensor and "
       "--output_tensor name.", commands=(INSPECT,))
define(flags.DEFINE_string, "converted", None, "The converted output directory.",
       commands=(VERIFY,))
define(
    flags.DEFINE_list, "export", [], "Also write the converted model in these formats inside the "
    "output directory: any of weights_h5 (model.weights.h5), keras (model.keras), saved_model "
    "(saved_model/), separated by commas.", commands=(CONVERT, BATCH, PORT))
define(
    flags.DEFINE_bool, "verify", False, "Before the output is put in place, restore it into a "
    "fresh model and compare it with the legacy graph (the input flags as for verify); only a "
    "passing conversion is kept. port verifies unless given --noverify.",
    commands=(CONVERT, BATCH, PORT))
define(flags.DEFINE_bool, "keep_failed", False,
       "With --verify: keep an output that fails verification (still exit 1).",
       commands=(CONVERT, BATCH, PORT))
# Verification inputs: verify, convert/batch with --verify, and suggest proving its draft.
PARITY_COMMANDS = (VERIFY, CONVERT, BATCH, SUGGEST)
# Library options spelled otherwise on the command line, for the hints of errors.
FLAG_OF_OPTION = {"feeds": "feed", "input_tensors": "input_tensor",
                   "input_shapes": "input_shape", "inputs_file": "inputs",
                   "input_pairs": "input_tensor", "output_pairs": "output_tensor",
                   "keras_feeds": "keras_feed", "batch_axes": "batch_axis"}
# The verification options whose fit only the legacy graph can tell.
GRAPH_INPUT_OPTIONS = frozenset({"output_tensor", "input_tensor", "input_tensors",
                                  "input_shape", "input_shapes", "input_max", "feeds",
                                  "input_pairs", "output_pairs", "keras_feeds",
                                  "inputs_file", "legacy_dropout", "batch_axes"})
define(
    flags.DEFINE_string, "input_tensor", None, "Legacy input placeholders fed to the Keras "
    "model's inputs in order, separated by commas (e.g. input_ids:0,token_type_ids:0), or "
    "paired with them by name as KERAS_INPUT=TENSOR (e.g. "
    "token_ids=input_ids:0,segment_ids=segment_ids:0); default: the placeholders the output "
    "depends on.", commands=PARITY_COMMANDS)
define(
    flags.DEFINE_string, "output_tensor", None, "Legacy output tensor, e.g. logits:0; or "
    "several compared at once as KERAS_OUTPUT=TENSOR separated by commas (a dict output's key, "
    "an output layer's name or an index), e.g. "
    "sequence_output=sequence_output:0,pooled_output=pooled_output:0.",
    commands=PARITY_COMMANDS)
define(
    flags.DEFINE_multi_string, "keras_feed", [], "KERAS_INPUT=VALUE: fill a Keras input no "
    "placeholder feeds with a constant at the shape of the paired inputs (repeatable), e.g. "
    "--keras_feed=padding_mask=1.", commands=PARITY_COMMANDS)
define(
    flags.DEFINE_string, "input_shape", None, "Input shapes without the batch dimension, one per "
    "input separated by ';' (e.g. '10,1;10,1'); one shape applies to all.",
    commands=PARITY_COMMANDS)
define(
    flags.DEFINE_string, "input_max", None, "Integer inputs are drawn from [0, input_max): one "
    "bound per input separated by ';' (e.g. '50;2'); one applies to all. Default for ids: the "
    "rows of the embedding table the graph indexes with them.",
    commands=PARITY_COMMANDS)
define(
    flags.DEFINE_string, "batch_axis", None, "The axis of each input's batch, one per input "
    "separated by ';' (e.g. '1' for a time-major [T, B] placeholder); default: read from the "
    "graph (axis 1 where an RNN unstacks the input as it is, else 0).",
    commands=PARITY_COMMANDS)
define(
    flags.DEFINE_multi_string, "feed", [], "NAME=VALUE: fill a placeholder the Keras model does "
    "not take with a constant at its declared shape (repeatable), e.g. --feed=istate:0=0 "
    "--feed=keep_prob:0=1.0 --feed=is_training:0=false.", commands=PARITY_COMMANDS)
define(
    flags.DEFINE_enum, "legacy_dropout", "off", "off: run the legacy graph in inference mode: "
    "when two runs as saved differ, dropout's constant keep probabilities "
    "(DropoutWrapper(output_keep_prob=0.75) inside an RNN loop, which no --feed reaches) are set "
    "to 1, each named in the report; as_saved: run it as saved. Either way a graph whose two "
    "runs differ is refused, its random ops named.",
    commands=PARITY_COMMANDS, enum_values=["off", "as_saved"])
define(flags.DEFINE_string, "inputs", None, "An .npz of real arrays by tensor name, "
       "for inputs and feeds alike (or by Keras input name, for Keras inputs no "
       "placeholder feeds; for port and an Estimator's signature: raw rows by feature name).",
       commands=(*PARITY_COMMANDS, PORT))
define(flags.DEFINE_integer, "batch_size", 2, "Rows in the random batch (at least as many as "
       "show every vocabulary entry and bucket of raw features).",
       commands=(*PARITY_COMMANDS, PORT, DEMO))
define(flags.DEFINE_integer, "seed", 0, "Seed of the random batch.",
       commands=(*PARITY_COMMANDS, PORT, DEMO))
define(flags.DEFINE_float, "tolerance", None, "Largest accepted relative "
       "difference (default: the zoo entry's, else 1e-5).",
       commands=(*PARITY_COMMANDS, PORT))
define(flags.DEFINE_bool, "layers", False, "Compare layer by layer and name the first "
       "layer that diverges (done anyway when parity fails).", commands=(VERIFY,))
define(flags.DEFINE_string, "plot", None, "Write a PNG of the difference per layer "
       "(needs the `plot` extra: pip install 'tf1-migrate[plot]').", commands=(VERIFY,))
define(flags.DEFINE_string, "workdir", "demo_output", "Directory for demo's files.",
       commands=(DEMO,))
define(flags.DEFINE_string, "input_dir", None,
       "Directory scanned recursively for legacy checkpoint prefixes.",
       commands=(BATCH,))
define(
    flags.DEFINE_string, "output_dir", None, "Output root; each checkpoint gets a converted "
    "directory at its relative path (run1/model.ckpt-1000 -> OUTPUT_DIR/run1/model.ckpt-1000/).",
    commands=(BATCH,))
define(
    flags.DEFINE_bool, "latest_only", False,
    "Per directory, only the newest entry of its `checkpoint` state file.", commands=(BATCH,))
define(
    flags.DEFINE_integer, "workers", 1, "Worker processes converting in parallel (0: in this "
    "process, without crash isolation).", commands=(BATCH,), lower_bound=0)
define(flags.DEFINE_bool, "force", False,
       "Convert again outputs that are already up to date, and plan anew what the copy "
       "plans stored in OUTPUT_DIR/batch_plans/ cover.", commands=(BATCH,))
define(
    flags.DEFINE_bool, "retry_failed", False, "Convert again checkpoints that failed before for "
    "a reason of their own (damaged, a plan problem, a failed verification) although neither "
    "they nor the table, model, options or toolkit version changed; by default a rerun reports "
    "them as failed before, unchanged, and starts no worker for them.", commands=(BATCH,))
define(
    flags.DEFINE_enum, "runner", "local", "Local worker processes, or an Apache Beam pipeline "
    "(pip install 'tf1-migrate[beam]').", commands=(BATCH,), enum_values=["local", "beam"])
define(
    flags.DEFINE_bool, "hash_sources", False, "Record every source file's full SHA-256 in the "
    "manifest and, on a rerun, compare them (default: a fingerprint of the checkpoint's "
    "metadata, which reads no tensor data).", commands=(CONVERT, BATCH))
define(
    flags.DEFINE_bool, "recheck_outputs", False, "On a rerun, re-hash the outputs that look up "
    "to date instead of checking their files and sizes.", commands=(BATCH,))
define(
    flags.DEFINE_float, "timeout_per_checkpoint", 1800.0, "A worker that makes no progress for "
    "this many seconds is killed and its checkpoint reported as timed out.", commands=(BATCH,),
    lower_bound=0.0)
define(
    flags.DEFINE_string, "beam_options", "", "With --runner=beam: Beam pipeline arguments in one "
    "string, e.g. \"--runner=DataflowRunner --project=P --region=R "
    "--temp_location=gs://B/tmp\"; without --runner: Beam's local FnApiRunner, in this "
    "process.", commands=(BATCH,))
define(
    flags.DEFINE_list, "vocabulary_dir", [], "Directories holding the vocabulary files an "
    "Estimator's graph names by a path of the machine that trained it (found by file name; "
    "an export's assets/ is searched anyway), separated by commas.", commands=(PORT,))
