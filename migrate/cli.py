"""Command line: `python -m migrate inspect|plan|convert|batch|verify|check|lint|zoo|demo`.

Flags live here and only here; every command reads them once and calls the
library with keyword arguments, so porting code can do the same without
flags. Errors print one line (no traceback unless --verbose) and exit 1;
usage errors exit 2.
"""

import json
import os
import sys
import traceback

from absl import app
from absl import flags

from migrate import errors

COMMANDS = ("inspect", "plan", "convert", "batch", "verify", "check", "lint", "zoo", "demo")

_CHECKPOINT = flags.DEFINE_string(
    "checkpoint", None, "Legacy TF1 checkpoint prefix (e.g. train/model.ckpt-12000) or a directory "
    "with a `checkpoint` state file.")
_TABLE = flags.DEFINE_string("table", None, "Mapping table (TOML).")
_MODEL = flags.DEFINE_string(
    "model", None, "Keras model factory as module:callable; importing the module runs its code.")
_ZOO = flags.DEFINE_string(
    "zoo", None, "Built-in conversion (see `python -m migrate zoo`): supplies the table, the "
    "model and the verify settings unless given explicitly.")
_OUTPUT = flags.DEFINE_string("output", None, "Output directory for the TF2 checkpoint.")
_KEEP = flags.DEFINE_enum(
    "keep", "trainable", ["trainable", "model_state"],
    "What the output carries: trainable weights only, or also the model's non-trainable "
    "weights (BatchNorm statistics).")
_EMA = flags.DEFINE_bool(
    "ema", False, "Read each variable's ExponentialMovingAverage shadow in its place.")
_OVERWRITE = flags.DEFINE_bool("overwrite", False, "Replace an existing output directory.")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Plan and check only; write nothing.")
_ALLOW_NONFINITE = flags.DEFINE_bool(
    "allow_nonfinite", False, "Carry NaN/Inf weights instead of refusing them (always reported).")
_BUILDER = flags.DEFINE_string(
    "builder", None, "legacy_graphs builder whose graph gives the variable roles when the "
    "checkpoint has no .meta.")
_USE_META = flags.DEFINE_bool("use_meta", True, "Read variable roles from the .meta graph.")
_JSON = flags.DEFINE_bool("json", False, "Print the JSON report instead of the summary.")
_REPORT = flags.DEFINE_string("report", None, "Also write the JSON report to this file.")
_VERBOSE = flags.DEFINE_bool("verbose", False, "Show tracebacks and TensorFlow's logs.")
_CONVERTED = flags.DEFINE_string("converted", None, "verify: the converted output directory.")
_INPUT_TENSOR = flags.DEFINE_string("input_tensor", None, "verify: legacy input placeholder.")
_OUTPUT_TENSOR = flags.DEFINE_string("output_tensor", None, "verify: legacy output tensor.")
_INPUT_SHAPE = flags.DEFINE_list(
    "input_shape", None, "verify: input shape without the batch dimension, e.g. 64,64,3.")
_INPUT_MAX = flags.DEFINE_integer(
    "input_max", None, "verify: integer inputs are drawn from [0, input_max).")
_BATCH_SIZE = flags.DEFINE_integer("batch_size", 2, "verify: rows in the random batch.")
_SEED = flags.DEFINE_integer("seed", 0, "verify: seed of the random batch.")
_TOLERANCE = flags.DEFINE_float(
    "tolerance", None, "verify: largest accepted relative difference (default: the zoo "
    "entry's, else 1e-5).")
_WORKDIR = flags.DEFINE_string("workdir", "demo_output", "demo: directory for its files.")
_INPUT_DIR = flags.DEFINE_string(
    "input_dir", None, "batch: directory scanned recursively for legacy checkpoint prefixes.")
_OUTPUT_DIR = flags.DEFINE_string(
    "output_dir", None, "batch: output root; each checkpoint gets a converted directory at its "
    "relative path (run1/model.ckpt-1000 -> OUTPUT_DIR/run1/model.ckpt-1000/).")
_LATEST_ONLY = flags.DEFINE_bool(
    "latest_only", False, "batch: per directory, only the newest entry of its `checkpoint` "
    "state file.")
_WORKERS = flags.DEFINE_integer(
    "workers", 1, "batch: worker processes converting in parallel (0: in this process, "
    "without crash isolation).", lower_bound=0)
_FORCE = flags.DEFINE_bool(
    "force", False, "batch: convert again outputs that are already up to date.")
_RUNNER = flags.DEFINE_enum(
    "runner", "local", ["local", "beam"],
    "batch: local worker processes, or an Apache Beam pipeline (pip install 'tf1-migrate[beam]').")
_BEAM_OPTIONS = flags.DEFINE_string(
    "beam_options", "", "batch --runner=beam: Beam pipeline arguments in one string, e.g. "
    "\"--runner=DataflowRunner --project=P --region=R --temp_location=gs://B/tmp\"; empty: "
    "the DirectRunner.")


def _import_tensorflow_quietly():
    """Imports TensorFlow with its start-up chatter hidden, unless --verbose."""
    if _VERBOSE.value or "tensorflow" in sys.modules:
        import tensorflow  # noqa: F401
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    # The C++ start-up lines ignore TF_CPP_MIN_LOG_LEVEL, so standard error is
    # silenced at the file-descriptor level for the import only.
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow as tf
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    tf.get_logger().setLevel("ERROR")
    from absl import logging
    logging.set_verbosity(logging.WARNING)


def _zoo_entry():
    if _ZOO.value is None:
        return None
    from migrate import zoo
    try:
        return zoo.get(_ZOO.value)
    except ValueError as error:
        raise app.UsageError(str(error), exitcode=2) from None


def _require(flag, command):
    if flag.value in (None, ""):
        raise app.UsageError(f"`{command}` needs --{flag.name}.", exitcode=2)
    return flag.value


def _table_and_model(command):
    entry = _zoo_entry()
    table = _TABLE.value or (entry.table_path if entry else None)
    model = _MODEL.value or (entry.model_factory if entry else None)
    if table is None or model is None:
        raise app.UsageError(f"`{command}` needs --table and --model, or --zoo.", exitcode=2)
    return table, model


def _options():
    from migrate.options import ConversionOptions
    return ConversionOptions(keep=_KEEP.value, ema=_EMA.value,
                             allow_nonfinite=_ALLOW_NONFINITE.value, use_meta=_USE_META.value,
                             builder=_BUILDER.value)


def _open_checkpoint():
    from migrate import pipeline
    if _BUILDER.value:
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
    return pipeline.open_checkpoint(_require(_CHECKPOINT, "this command"), _options())


def _emit(document, summary):
    if _REPORT.value:
        with open(_REPORT.value, "w", encoding="utf-8") as file:
            json.dump(document, file, indent=2, sort_keys=True)
            file.write("\n")
    print(json.dumps(document, indent=2, sort_keys=True) if _JSON.value else summary)


def command_inspect():
    from migrate import pipeline
    from migrate.progress import format_bytes
    description = pipeline.inspect(_open_checkpoint())
    lines = [f"{description['checkpoint']} (roles from {description['role_origin']})"]
    for variable in description["variables"]:
        lines.append(f"  {variable['name']:<60} {str(variable['shape']):<20} "
                     f"{variable['dtype']:<8} {format_bytes(variable['bytes']):>10}  "
                     f"{variable['role']} ({variable['role_source']})")
    lines.append("  totals:")
    for role, entry in description["roles"].items():
        if entry["count"]:
            lines.append(f"    {role:<15} {entry['count']:>6} variable(s) "
                         f"{format_bytes(entry['bytes']):>10}")
    _emit(description, "\n".join(lines))
    return 0


def _convert(dry_run):
    import migrate
    table, model = _table_and_model("convert" if not dry_run else "plan")
    output = None if dry_run else _require(_OUTPUT, "convert")
    report = migrate.convert(
        _open_checkpoint(), table, model, output, options=_options(),
        overwrite=_OVERWRITE.value, dry_run=dry_run, show_progress=not _JSON.value,
        model_name=model)
    _emit(report.to_json(), report.summary())
    return 0


def command_plan():
    return _convert(dry_run=True)


def command_convert():
    return _convert(dry_run=_DRY_RUN.value)


def command_batch():
    import shlex

    import migrate
    table, model = _table_and_model("batch")
    if _RUNNER.value == "beam" and flags.FLAGS["workers"].present:
        raise app.UsageError("--workers is for --runner=local; give Beam its own worker "
                             "options in --beam_options.", exitcode=2)
    if _BUILDER.value:
        os.environ["TF_USE_LEGACY_KERAS"] = "1"
    report = migrate.convert_batch(
        _require(_INPUT_DIR, "batch"), _require(_OUTPUT_DIR, "batch"), table, model,
        latest_only=_LATEST_ONLY.value, workers=_WORKERS.value, force=_FORCE.value,
        options=_options(), runner=_RUNNER.value,
        beam_options=shlex.split(_BEAM_OPTIONS.value), show_progress=not _JSON.value,
        verbose=_VERBOSE.value)
    _emit(report.to_json(), report.summary())
    return 0 if report.ok else 1


def command_verify():
    import migrate
    from migrate import pipeline
    entry = _zoo_entry()
    _, model_factory = _table_and_model("verify")
    settings = dict(entry.verify) if entry else {}
    for key, flag in (("input_tensor", _INPUT_TENSOR), ("output_tensor", _OUTPUT_TENSOR),
                      ("input_max", _INPUT_MAX), ("tolerance", _TOLERANCE)):
        if flag.value is not None:
            settings[key] = flag.value
    if _INPUT_SHAPE.value:
        settings["input_shape"] = tuple(int(size) for size in _INPUT_SHAPE.value)
    for key in ("input_tensor", "output_tensor"):
        if key not in settings:
            raise app.UsageError(f"`verify` needs --{key} (or --zoo).", exitcode=2)
    settings.setdefault("tolerance", 1e-5)
    model = pipeline.load_model(model_factory)
    restored = migrate.restore(model, _require(_CONVERTED, "verify"))
    report = migrate.verify(_require(_CHECKPOINT, "verify"), model, batch_size=_BATCH_SIZE.value,
                            seed=_SEED.value, ema=_EMA.value, **settings)
    document = report.to_json()
    document["restore"] = {"restored": len(restored.restored), "unchanged": restored.unchanged}
    _emit(document, restored.summary() + "\n" + report.summary())
    return 0 if report.passed else 1


def command_check():
    from migrate.output import manifest as integrity
    result = integrity.check(_require(_OUTPUT, "check"))
    _emit(result.to_json(), result.summary())
    return 0 if result.ok else 1


def command_lint():
    from migrate.mapping import lint
    names = None
    if _CHECKPOINT.value:
        from migrate.source.roles import Role
        _import_tensorflow_quietly()
        checkpoint = _open_checkpoint()
        # Slots, shadows and counters never go through the table.
        names = [name for name, variable in checkpoint.variables.items()
                 if variable.role in (Role.TRAINABLE, Role.MODEL_STATE, Role.UNKNOWN)]
    result = lint.lint_table(_require(_TABLE, "lint"), names)
    _emit(result.to_json(), result.summary())
    return 0 if result.ok else 1


def command_zoo():
    from migrate import zoo
    entries = [zoo.get(name) for name in zoo.available()]
    document = [{"name": entry.name, "description": entry.description, "table": entry.table_path,
                 "model": entry.model_factory, "verify": entry.verify} for entry in entries]
    _emit(document, "\n".join(f"{entry.name:<22} {entry.description}" for entry in entries))
    return 0


def command_demo():
    from migrate import demo
    result = demo.run(zoo_name=_ZOO.value or "resnet_v1_50", workdir=_WORKDIR.value,
                      overwrite=True, batch_size=_BATCH_SIZE.value, seed=_SEED.value)
    _emit(result, demo.summary(result))
    return 0 if result["passed"] else 1


def main(argv):
    if len(argv) < 2 or argv[1] not in COMMANDS:
        raise app.UsageError(
            f"Expected a command, one of {', '.join(COMMANDS)}. "
            f"Received: {argv[1] if len(argv) > 1 else 'nothing'}", exitcode=2)
    if len(argv) > 2:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[2:])}", exitcode=2)
    try:
        if argv[1] != "lint":
            _import_tensorflow_quietly()
        return globals()[f"command_{argv[1]}"]()
    except errors.MigrateError as error:
        if _VERBOSE.value:
            traceback.print_exc()
        print(f"error: {error}", file=sys.stderr)
        if isinstance(error, errors.PlanError):
            print(error.details(), file=sys.stderr)
        return 1
    except app.UsageError:
        raise
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # A bug or an unexpected TensorFlow failure.
        if _VERBOSE.value:
            traceback.print_exc()
        print(f"error: {type(error).__name__}: {errors.first_line(error)} "
              f"(run with --verbose for the traceback)", file=sys.stderr)
        return 1


def run():
    app.run(main)
