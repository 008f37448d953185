"""The commands: one handler per command, the rules between its flags, and `COMMANDS`.

A handler takes the `ConversionOptions` built from the flags, calls the
library with keyword arguments, prints through `console`, and returns the
exit code.
"""

import dataclasses
import shlex
import sys

from migrate import demo
from migrate import estimator
from migrate import files
from migrate import pipeline
from migrate import verify_settings
from migrate import zoo
from migrate.batch import run as batch_run
from migrate.cli import console
from migrate.cli import settings
from migrate.cli.command import Command
from migrate.cli.command import Requirement
from migrate.cli.command import TABLE_AND_MODEL
from migrate.cli.command import UsageError
from migrate.cli.command import checkpoint_has_signature
from migrate.cli.command import flag_hint
from migrate.cli.command import needs
from migrate.cli.flags import BATCH
from migrate.cli.flags import CHECK
from migrate.cli.flags import CONVERT
from migrate.cli.flags import DEMO
from migrate.cli.flags import FAILURE_EXIT
from migrate.cli.flags import FLAGS
from migrate.cli.flags import INSPECT
from migrate.cli.flags import LINT
from migrate.cli.flags import PLAN
from migrate.cli.flags import PORT
from migrate.cli.flags import SUCCESS_EXIT
from migrate.cli.flags import SUGGEST
from migrate.cli.flags import VERIFY
from migrate.cli.flags import WARNING_PREFIX
from migrate.cli.flags import ZOO
from migrate.mapping import lint
from migrate.output import manifest
from migrate.output.report import inspect_summary
from migrate.planning import target as target_model
from migrate.source.roles import Role
from migrate.suggest import suggest
from migrate.verification import layers
from migrate.verification import restore as restore_lib

# Commands whose first seconds go to TensorFlow's import before anything is
# printed (a batch and the demo say what they start themselves).
SLOW_TO_START = (INSPECT, PLAN, CONVERT, VERIFY, SUGGEST, PORT)


def command_inspect(options):
    description = pipeline.inspect(settings.open_checkpoint(options), graph=FLAGS.graph)
    console.emit(description, inspect_summary(description))
    return SUCCESS_EXIT


def _convert(options, dry_run):
    table, model = settings.table_and_model()
    with settings.graph_misfits_as_input_errors():
        # Opened before TensorFlow is imported (a --builder's graph, the
        # user's code, was built after the import, in `_run`).
        with settings.tensorflow_imported_quietly():
            checkpoint = settings.open_checkpoint(options, read_ahead=not dry_run)
        report = pipeline.convert(
            checkpoint, table, model,
            None if dry_run else FLAGS.output,
            options=options, overwrite=FLAGS.overwrite, dry_run=dry_run,
            show_progress=_shows_progress(), model_name=model, hash_sources=FLAGS.hash_sources)
    # On standard error too, even with --json: the output directory was changed.
    console.clear_status()
    for note in report.recovered:
        print(f"{WARNING_PREFIX}{note}", file=sys.stderr)
    console.emit(report.to_json(), report.summary())
    return SUCCESS_EXIT


def _shows_progress():
    """convert's progress bar: on a terminal only, where the bar redraws one line.

    Off a terminal (a log, a pipe) nothing is printed before the results, so
    an error stays one line (a batch logs its own progress lines).
    """
    return not FLAGS.json and sys.stderr.isatty()


def command_plan(options):
    # Without --table (and --zoo), the plan lists every variable beside the weights of its
    # shape: where a table written by hand starts.
    return _convert(options, dry_run=True)


def command_convert(options):
    return _convert(options, dry_run=FLAGS.dry_run)


def _converts_with_builder():
    return FLAGS.builder is not None


def _check_batch():
    if FLAGS.runner == "beam" and FLAGS["workers"].present:
        raise UsageError("--workers is for --runner=local; give Beam its own worker options in "
                         "--beam_options.")
    if FLAGS.runner == "beam" and FLAGS["timeout_per_checkpoint"].present:
        raise UsageError("--timeout_per_checkpoint is for --runner=local; Beam retries and times "
                         "out work items itself.")
    if not FLAGS.timeout_per_checkpoint > 0:
        # The library's own message; absl's lower bound is inclusive.
        batch_run.check_timeout(FLAGS.timeout_per_checkpoint)
    _check_parity_flags()


def _batch_needs_tensorflow():
    """Whether a batch imports TensorFlow in this process before it starts.

    It converts in this process only with --workers=0 or --runner=beam, and
    reaches URLs (gs://...) only through `tf.io.gfile`. Otherwise only its
    worker processes import TensorFlow, and a rerun with every output up to
    date imports it nowhere: it starts and ends in a fraction of a second.
    """
    if FLAGS.workers == 0 or FLAGS.runner == "beam":
        return True
    paths = (FLAGS.input_dir, FLAGS.output_dir, FLAGS.table, FLAGS.report)
    return any(files.is_url(path) for path in paths if path)


def command_batch(options):
    table, model = settings.table_and_model()
    try:
        report = batch_run.convert_batch(
            FLAGS.input_dir, FLAGS.output_dir, table, model, latest_only=FLAGS.latest_only,
            workers=FLAGS.workers, force=FLAGS.force, options=options, runner=FLAGS.runner,
            beam_options=shlex.split(FLAGS.beam_options), show_progress=not FLAGS.json,
            verbose=FLAGS.verbose, hash_sources=FLAGS.hash_sources,
            recheck_outputs=FLAGS.recheck_outputs, retry_failed=FLAGS.retry_failed,
            timeout_per_checkpoint=FLAGS.timeout_per_checkpoint)
    except batch_run.BatchInterrupted as interrupted:
        # The partial report is on disk already; show it before exiting.
        console.emit(interrupted.report.to_json(), interrupted.report.summary())
        raise
    console.emit(report.to_json(), report.summary())
    return SUCCESS_EXIT if report.ok else FAILURE_EXIT


def command_verify(options):
    # verify reads the legacy graph itself (its .meta, --builder's graph, a SavedModel's with
    # --tags and --signature, a frozen graph); --ema is its one conversion option.
    verification = settings.verify_settings_of_flags()
    entry = settings.zoo_entry()
    # A factory that takes the checkpoint resolves the prefix or directory itself.
    model = target_model.load_model(FLAGS.model or entry.model_factory,
                                    checkpoint=FLAGS.checkpoint)
    restored = restore_lib.restore(model, FLAGS.converted)
    with settings.graph_misfits_as_input_errors():
        report = pipeline.verify(FLAGS.checkpoint, model, settings=verification, ema=FLAGS.ema,
                                 table=FLAGS.table, converted=FLAGS.converted,
                                 options=options)
    lines = [restored.summary(), report.summary()]
    if FLAGS.plot and report.layers is not None:
        layers.plot(report.layers, FLAGS.plot, tolerance=report.tolerance)
        lines.append(f"plot: {FLAGS.plot}")
    document = report.to_json()
    document["restore"] = {"restored": len(restored.restored), "unchanged": restored.unchanged}
    console.emit(document, "\n".join(lines))
    return SUCCESS_EXIT if report.passed else FAILURE_EXIT


def _check_parity_flags():
    """convert and batch: the verification flags go with --verify, which needs an output tensor."""
    if not FLAGS.verify:
        for name in ("keep_failed", "input_tensor", "output_tensor", "input_shape", "input_max",
                     "batch_axis", "feed", "keras_feed", "inputs", "batch_size", "seed",
                     "tolerance", "legacy_dropout"):
            if FLAGS[name].present:
                raise UsageError(f"--{name} is for --verify.")
        return
    if FLAGS.output_tensor is None and FLAGS.zoo is None and not checkpoint_has_signature():
        raise UsageError("--verify needs --output_tensor, or --zoo (or a SavedModel "
                         "--checkpoint, whose signature names the tensors).")
    _check_verify_inputs()


def _check_verify_inputs():
    """Parses the input flags before anything is imported, so their errors are usage errors."""
    if FLAGS.input_shape is not None:
        verify_settings.parse_input_shapes(FLAGS.input_shape)
    if FLAGS.input_max is not None:
        verify_settings.parse_input_max(FLAGS.input_max)
    if FLAGS.batch_axis is not None:
        verify_settings.parse_batch_axes(FLAGS.batch_axis)
    for text in FLAGS.feed + FLAGS.keras_feed:
        verify_settings.parse_feed(text)
    for name in ("input_tensor", "output_tensor"):
        if FLAGS[name].value is not None:
            verify_settings.parse_pairs(FLAGS[name].value, name)


def command_check(options):
    del options  # A converted output carries its options in its manifest.
    result = manifest.check(FLAGS.output)
    console.emit(result.to_json(), result.summary())
    return SUCCESS_EXIT if result.ok else FAILURE_EXIT


def command_lint(options):
    table, model = settings.table_and_model()
    names = checkpoint = None
    if FLAGS.checkpoint:
        settings.import_tensorflow_quietly()
        checkpoint = settings.open_checkpoint(options)
        pipeline.admit_named_constants(checkpoint, table)
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
    console.emit(document, summary)
    return SUCCESS_EXIT if ok else FAILURE_EXIT


def _check_lint():
    """lint plans with the model only against a checkpoint's variables."""
    if (FLAGS.model is not None or FLAGS.zoo is not None) and FLAGS.checkpoint is None:
        raise UsageError("lint's --model (or --zoo) needs --checkpoint: the plan pairs its "
                         "variables with the model's weights.")


def command_suggest(options):
    verification = (settings.verify_settings_of_flags() if FLAGS.output_tensor is not None
                    or checkpoint_has_signature() else None)
    report = suggest(settings.open_checkpoint(options), FLAGS.model, output=FLAGS.output,
                     overwrite=FLAGS.overwrite, options=options, verify=verification)
    # The library names its option (`input_shape`); the command line, its flag.
    hint = flag_hint(report.parity_option, COMMANDS[SUGGEST])
    lines = [report.summary(parity_suffix=hint)]
    if not report.ok:
        lines.append("unresolved (marked in the draft; edit it, or the model, and run again):")
        lines += [f"  - {line}" for line in report.unresolved_lines(parity_suffix=hint)]
    console.emit(report.to_json(), "\n".join(lines))
    return SUCCESS_EXIT if report.ok else FAILURE_EXIT


def _check_suggest():
    """suggest runs parity only with an output tensor; the other input flags need it."""
    if FLAGS.output_tensor is None and not checkpoint_has_signature():
        for name in ("input_tensor", "input_shape", "input_max", "batch_axis", "feed",
                     "keras_feed", "inputs", "batch_size", "seed", "tolerance", "legacy_dropout"):
            if FLAGS[name].present:
                raise UsageError(f"--{name} is for parity, which needs --output_tensor.")
    _check_verify_inputs()


def _port_verifies():
    """port proves its output unless given --noverify."""
    return FLAGS.verify or not FLAGS["verify"].present


def command_port(options):
    verify = _port_verifies()
    if verify and options.verify is None:
        options = dataclasses.replace(options, verify=settings.verify_settings_of_flags())
    with settings.tensorflow_imported_quietly():
        checkpoint = estimator.open_source(FLAGS.checkpoint, options)
    with settings.graph_misfits_as_input_errors():
        report = estimator.port(checkpoint, FLAGS.output, overwrite=FLAGS.overwrite,
                                vocabulary_dirs=tuple(FLAGS.vocabulary_dir), verify=verify,
                                options=options, show_progress=_shows_progress())
    console.emit(report.to_json(), report.summary())
    return SUCCESS_EXIT


def _check_port():
    """The verification flags go with port's verification, which --noverify skips."""
    if not _port_verifies():
        for name in ("keep_failed", "inputs", "batch_size", "seed", "tolerance"):
            if FLAGS[name].present:
                raise UsageError(f"--{name} is for port's verification, which --noverify skips.")


def command_zoo(options):
    del options  # Lists the entries only.
    entries = [zoo.get(name) for name in zoo.available()]
    document = [{"name": entry.name, "description": entry.description, "table": entry.table_path,
                 "model": entry.model_factory, "verify": entry.verify} for entry in entries]
    console.emit(document, "\n".join(f"{entry.name:<22} {entry.description}" for entry in entries))
    return SUCCESS_EXIT


def command_demo(options):
    del options  # The demo converts with its own options, twice.
    result = demo.run(zoo_name=FLAGS.zoo or "resnet_v1_50", workdir=FLAGS.workdir,
                      overwrite=True, batch_size=FLAGS.batch_size, seed=FLAGS.seed)
    console.emit(result, demo.summary(result))
    return SUCCESS_EXIT if result["passed"] else FAILURE_EXIT


COMMANDS = {command.name: command for command in (
    Command(INSPECT, "list a legacy checkpoint's variables, shapes, bytes and roles",
            command_inspect, (needs("checkpoint"),)),
    Command(PLAN, "check a conversion without writing (unmapped, unfilled, shapes, collisions)",
            command_plan, (needs("checkpoint"), Requirement((("model",), ("zoo",))))),
    Command(CONVERT, "write a TF2 checkpoint holding only the mapped weights (+ manifest.json)",
            command_convert, (needs("checkpoint"), Requirement((("output",),), unless="dry_run"),
                              TABLE_AND_MODEL), check=_check_parity_flags,
            needs_tensorflow=_converts_with_builder),
    Command(BATCH, "convert every checkpoint under a directory (resumable, crash-isolated "
            "workers)", command_batch, (needs("input_dir"), needs("output_dir"),
                                        TABLE_AND_MODEL), check=_check_batch,
            needs_tensorflow=_batch_needs_tensorflow),
    Command(VERIFY, "run the legacy graph and the restored Keras model, compare outputs",
            command_verify, (needs("checkpoint"), needs("converted"),
                             Requirement((("model",), ("zoo",))),
                             Requirement((("output_tensor",), ("zoo",)),
                                         unless_signature=True)),
            check=_check_verify_inputs),
    Command(CHECK, "re-hash a converted output against its manifest", command_check,
            (needs("output"),)),
    Command(LINT, "check a mapping table (TensorFlow only with --checkpoint)", command_lint,
            (Requirement((("table",), ("zoo",))),), check=_check_lint, needs_tensorflow=False),
    Command(SUGGEST, "draft the mapping table from the checkpoint and the model, and prove it",
            command_suggest, (needs("checkpoint"), needs("model"), needs("output")),
            check=_check_suggest),
    Command(PORT, "write a canned Estimator (model_dir or export) as Keras code, its table and "
            "its weights, proven", command_port, (needs("checkpoint"), needs("output")),
            check=_check_port),
    Command(ZOO, "list the built-in conversions", command_zoo),
    Command(DEMO, "build a legacy checkpoint, convert it, verify it (the main job)",
            command_demo),
)}
