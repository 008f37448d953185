"""The conversion pipeline: open, plan, check, then write; the engine behind `migrate.convert`."""

import dataclasses
import time

from migrate import files
from migrate import progress as progress_lib
from migrate.errors import ArgumentError
from migrate.errors import CheckpointError
from migrate.errors import OutputError
from migrate.mapping import layouts
from migrate.mapping.layouts import tf1_graph
from migrate.mapping.table import load_table
from migrate.options import ConversionOptions
from migrate.output import assign
from migrate.output import atomic
from migrate.output import checkpoint as output_checkpoint
from migrate.output import export as export_lib
from migrate.output import manifest as manifest_lib
from migrate.output import report as report_lib
from migrate.planning import target as target_model
from migrate.planning.plan import make_plan
from migrate.planning.target import load_model
from migrate.source import graph_listing
from migrate.source import lookups
from migrate.source.checkpoint import LegacyCheckpoint
from migrate.source.roles import KEEP_MODES
from migrate.source.roles import Role
from migrate.verification import parity
from migrate.verification import staged
from migrate.verify_settings import DEFAULT_BATCH_SIZE
from migrate.verify_settings import DEFAULT_TOLERANCE


def open_checkpoint(checkpoint, options=None, *, read_ahead=False):
    """Returns a `LegacyCheckpoint` for a path (roles as `options` say), or the checkpoint itself.

    With `read_ahead`, the tensors a conversion with `options` keeps are asked
    for in the background as soon as the `.index` is read (see
    `LegacyCheckpoint.open`), so a slow disk works while TensorFlow is
    imported and the model built.
    """
    if isinstance(checkpoint, LegacyCheckpoint):
        return checkpoint
    options = options or ConversionOptions()
    roles = None
    if read_ahead:
        roles = KEEP_MODES[options.keep]
        if options.ema:  # The shadows are read in place of the trainable weights.
            roles = (roles - {Role.TRAINABLE}) | {Role.EMA_SHADOW}
    return LegacyCheckpoint.open(checkpoint, builder=options.builder, use_meta=options.use_meta,
                                 tags=options.tags, signature=options.signature,
                                 read_ahead=roles)


def plan(checkpoint, table, model, *, options=None):
    """Plans a conversion without reading tensor data or writing anything.

    Args:
        checkpoint: a legacy checkpoint prefix or directory, or a `LegacyCheckpoint`.
        table: a TOML table path or a `MappingTable`; None plans with an empty
            table, which lists every source as unmapped and every weight as
            unfilled (`ConversionPlan.side_by_side_lines()` pairs them by shape).
        model: a built Keras model, a factory returning one, or `module:callable`.
        options: a `ConversionOptions` (what to keep, EMA, where roles come
            from); the defaults when None.

    Returns:
        A `ConversionPlan` whose `problems` list every offender. The weights
        to be written are also checked to be reachable by a checkpoint.

    Example:

        conversion_plan = migrate.plan("train/model.ckpt-3", "table.toml", model)
        for problem in conversion_plan.problems:
            print(problem.describe())
    """
    options = options or ConversionOptions()
    checkpoint = open_checkpoint(checkpoint, options)
    table = load_table(table)
    # Planning reads no weight's value.
    model = target_model.load_template(model, checkpoint=checkpoint.prefix).model
    return plan_for_writing(checkpoint, table, model, options)[0]


def assign_into_model(checkpoint, table, model, *, options=None):
    """Plans a conversion and, when the plan is clean, assigns the weights into `model`.

    Nothing is written to disk: this is `convert` without its output, for
    callers that compare the model with the legacy graph straight away
    (`migrate.suggest` proving a draft).

    Args:
        checkpoint: a legacy checkpoint prefix or directory, or a `LegacyCheckpoint`.
        table: a TOML table path or a `MappingTable` (None: an empty table).
        model: a built Keras model; its weights are overwritten when the plan is clean.
        options: a `ConversionOptions`; the defaults when None.

    Returns:
        The `ConversionPlan`; when it has problems, the model was left untouched.

    Raises:
        CheckpointError, TableError: bad input.

    Example:

        conversion_plan = pipeline.assign_into_model(prefix, "table.toml", model)
        conversion_plan.raise_for_problems()
    """
    options = options or ConversionOptions()
    checkpoint = open_checkpoint(checkpoint, options)
    conversion_plan, _, variables_by_path, _ = plan_for_writing(checkpoint, load_table(table),
                                                                model, options)
    if not conversion_plan.problems:
        assign.execute(conversion_plan, checkpoint, variables_by_path,
                       allow_nonfinite=options.allow_nonfinite)
    return conversion_plan


def admit_named_constants(checkpoint, table):
    """Takes the constants of a frozen GraphDef that a table rule names as weights.

    A constant whose use in the graph does not say it is a weight (see
    `migrate.source.frozen_graph`) is one when a rule that maps (not drops)
    names it: the table's word wins over the graph's guess.

    Args:
        checkpoint: the opened `LegacyCheckpoint`.
        table: a TOML table path or a `MappingTable`.

    Returns:
        The names admitted, e.g. `["BC1"]` (empty for other sources).

    Example:

        admit_named_constants(checkpoint, load_table("table.toml"))
    """
    table = load_table(table)
    reasons = {}
    for name in checkpoint.not_weights or ():
        found = table.lookup(name)
        if found is not None and not found.rule.drop:
            reasons[name] = f"named by {found.rule.describe()} of the table {table.origin}"
    return checkpoint.admit_constants(reasons)


def plan_for_writing(checkpoint, table, model, options):
    """Plans and, when the plan has no problems, checks reachability.

    Returns:
        `(plan, targets, variables_by_path, object_paths)`: the model's
        `TargetWeight`s and variables by path (`target_model.weights` split in
        two), and `object_paths` from `target_model.reachable_paths` (None when
        the plan has problems).
    """
    admit_named_constants(checkpoint, table)
    weights = target_model.weights(model)
    targets = {path: weight for path, (weight, _) in weights.items()}
    variables_by_path = {path: variable for path, (_, variable) in weights.items()}
    conversion_plan = make_plan(
        checkpoint.variables, table, targets,
        keep=options.keep, ema_shadows=checkpoint.ema_shadows() if options.ema else None,
        resolve_parameters=_graph_parameters(checkpoint), cell_facts=_graph_cells(checkpoint),
        partitioned=lookups.of_checkpoint(checkpoint))
    if checkpoint.folded:
        conversion_plan.problems = [_folded_problem(problem) for problem in
                                    conversion_plan.problems]
    object_paths = None
    if not conversion_plan.problems:
        object_paths = target_model.reachable_paths(
            model, conversion_plan.target_paths, variables_by_path)
    return conversion_plan, targets, variables_by_path, object_paths


# The weights of a Keras BatchNormalization, which a folded graph no longer has.
_BATCH_NORM_WEIGHTS = ("gamma", "beta", "moving_mean", "moving_variance")


def _folded_problem(problem):
    """Says why a BatchNorm weight is left unfilled when optimize_for_inference folded the graph."""
    if problem.kind != "unfilled" or problem.target.rpartition("/")[2] not in _BATCH_NORM_WEIGHTS:
        return problem
    return dataclasses.replace(problem, message=(
        f"{problem.message}: the graph was folded by optimize_for_inference (each BatchNorm "
        f"merged into the convolution before it, as CONV_weights and CONV_bn_offset), so the "
        f"Keras model must be the folded one (that convolution with a bias, no "
        f"BatchNormalization)"))


def _graph_parameters(checkpoint):
    """Lets layout converters read their parameters from the legacy graph.

    A parameter the table leaves unset is taken from the graph; one the table
    sets must agree with the graph, since the graph is what actually ran.
    """
    if not checkpoint.has_graph:
        return None

    def resolve(layout_name, scope, parameters):
        reader = layouts.get(layout_name).graph_parameters
        if reader is None:
            return parameters
        found = reader(checkpoint.graph, scope)
        resolved = dict(parameters)
        for key, graph_value in found.items():
            table_value = parameters.get(key)
            if table_value is None:
                resolved[key] = graph_value
            elif not _same_value(table_value, graph_value):
                raise layouts.LayoutError(
                    f"the table and the graph in {checkpoint.meta_path} disagree on {key} for "
                    f"{scope}; remove the table value or fix it. Expected {key}="
                    f"{graph_value!r} (what the graph ran). Received: {key}={table_value!r}")
        return resolved
    return resolve


def _graph_cells(checkpoint):
    """What the legacy graph shows about its LSTM cells, checked whatever rules claim them."""
    if not checkpoint.has_graph:
        return ()
    # Decided from the checkpoint's names first: importing a graph costs a
    # quarter of a second per checkpoint of a batch, for nothing when it has no cells.
    if not tf1_graph.lstm_cell_scopes(checkpoint.variables):
        return ()
    return tf1_graph.lstm_cells(checkpoint.graph)


def _same_value(first, second):
    if isinstance(first, (int, float)) and isinstance(second, (int, float)):
        return abs(float(first) - float(second)) <= 1e-6 * max(1.0, abs(float(second)))
    return first == second


def convert(checkpoint, table, model, output, *, options=None, overwrite=False, dry_run=False,
            show_progress=False, model_name=None, hash_sources=False, fill_model=None,
            extra_files=None):
    """Converts a legacy checkpoint into a TF2 checkpoint for `model`.

    Plans first (every name mapped, every target filled once, shapes and
    dtypes agree, every weight reachable); only then reads tensors one at a
    time, assigns them into the model's variables, and writes the checkpoint,
    the exports `options.exports` names (`model.weights.h5`, `model.keras`,
    `saved_model/`) and the `manifest.json` into a temporary directory renamed
    to `output`. First, what a run killed while replacing `output` left is
    restored or removed (`atomic.recover_previous`; `report.recovered` says
    what was done), as a batch does.

    Args:
        checkpoint: a legacy checkpoint prefix or directory, or a `LegacyCheckpoint`.
        table: a TOML table path or a `MappingTable`.
        model: a built Keras model, a factory returning one, or `module:callable`.
        output: the output directory; it must not exist unless `overwrite`.
        options: a `ConversionOptions`: what to keep (trainable weights only,
            the default, or also the model state such as BatchNorm
            statistics), EMA, NaN/Inf handling, where roles come from, exports.
        overwrite: replace an existing output directory.
        dry_run: plan and check only; write nothing.
        show_progress: print progress to standard error.
        model_name: how the manifest names the model (e.g. `module:callable`).
        hash_sources: record every source file's full SHA-256 in the manifest
            (reads all of it, optimizer slots included); by default the
            manifest holds a fingerprint from the checkpoint's metadata.
        fill_model: also assign every converted weight into `model`, which
            then holds the converted values. None (the default) fills a
            model the caller built and passed in, and not one built here
            from a factory or `module:callable`; exports always fill it.
            Unfilled, the model is only the template of the output's
            structure, and a weight whose stored bytes need no change
            (`Assignment.reshaped_sources`: reshapes only) is copied from the
            legacy data file straight into the output; built here, without
            `options.verify`, it is built without its weights' initial
            values (`target.load_template`), which nothing then reads.
        extra_files: `{file name: bytes}` written into the output with the
            checkpoint, recorded in the manifest (`port` puts the model's
            code and its table there).

    With `options.verify` (a `VerifySettings`), the settings are checked
    against the legacy graph before any weight is read (`parity.prepare`);
    the output is restored from the temporary directory into a fresh model
    (built again from a factory or `module:callable`, else cloned) and
    compared with the legacy graph before it is renamed into place; the
    manifest and the report record the result under `verified`.

    Returns:
        A `ConversionReport`.

    Raises:
        PlanError: the plan has problems (each offender is listed).
        ArgumentError: `dry_run` with `options.verify` (verification restores
            the written output).
        CheckpointError, ModelError, OutputError, TableError: bad input.
        VerificationError: verification failed; nothing was written unless
            `options.verify.keep_failed`.

    Example:

        report = migrate.convert("train/model.ckpt-3", "table.toml", model, "converted",
                                 options=migrate.ConversionOptions(keep="model_state"))
        print(report.summary())
    """
    started = time.monotonic()
    options = options or ConversionOptions()
    if dry_run and options.verify is not None:
        raise ArgumentError("Verification restores the written output, and a dry run writes "
                            "nothing. Expected dry_run=False, or options without verify. "
                            "Received: dry_run=True", option="dry_run")
    model_spec = model
    model_name = model_name or (model if isinstance(model, str) else None)
    checkpoint = open_checkpoint(checkpoint, options, read_ahead=not dry_run)
    table = load_table(table)
    recovered = []
    if not dry_run:
        source_paths = checkpoint.source_files()
        # Before the checks and any work: a run killed while replacing `output`
        # may have left it only as NAME.previous-*, which must be back first.
        recovered = atomic.recover_previous(output)
        try:
            atomic.check_output(output, overwrite=overwrite, source_files=source_paths)
        except OutputError as error:
            # The refusal may concern the output just restored: say so.
            if not recovered:
                raise
            raise OutputError(" ".join([*recovered, str(error)]),
                              option=error.option) from None
        sources = manifest_lib.hash_in_background(source_paths, hash_sources=hash_sources)
    if fill_model is None:
        fill_model = target_model.is_model(model)
    fill_model = fill_model or bool(options.exports)
    # A model built here only as the output's template (nothing fills it, and
    # verification builds its own) is built without its weights' values.
    if not fill_model and options.verify is None and not target_model.is_model(model):
        template = target_model.load_template(model, checkpoint=checkpoint.prefix)
    else:
        template = target_model.Template(load_model(model, checkpoint=checkpoint.prefix))
    model = template.model
    export_lib.check_exportable(model, options.exports)  # Refused before anything is written.
    conversion_plan, targets, variables_by_path, object_paths = plan_for_writing(
        checkpoint, table, model, options)
    conversion_plan.raise_for_problems()
    legacy = None
    if options.verify is not None and not dry_run:
        # Settings the legacy graph refuses are refused before any weight is read.
        legacy = parity.prepare(checkpoint, model, options.verify, ema=options.ema)
    report = conversion_report(checkpoint, table, conversion_plan, targets, options=options,
                               output=None if dry_run else str(output), dry_run=dry_run,
                               recovered=recovered)
    if dry_run:
        return report
    # Read before assigning: the model holds the values it was built with.
    report.unwritten_at_initial = report_lib.left_out_at_initial(
        checkpoint, table, lambda path: template.initial_value(variables_by_path[path]),
        report.unwritten_targets)
    progress = progress_lib.Progress(
        "convert", len(conversion_plan.assignments), report.written_bytes, enabled=show_progress)
    root_children = output_checkpoint.mirror(
        object_paths, variables_by_path, alias_model_children=not target_model.is_keras_3(model))
    verified = None
    with atomic.staged_directory(output, overwrite=overwrite) as staging:
        # Each weight is written as soon as it is assigned, while the next is read.
        with output_checkpoint.CheckpointStream(staging, root_children) as stream:
            _, nonfinite = assign.execute(
                conversion_plan, checkpoint, variables_by_path,
                allow_nonfinite=options.allow_nonfinite, progress=progress,
                on_assigned=stream.write, copy_stored=None if fill_model else stream.copy)
        report.nonfinite = [[name, count] for name, count in nonfinite]
        manifest = manifest_lib.build(
            checkpoint=checkpoint, table=table, model=model, model_name=model_name,
            report=report, sources=sources.result(), options=options)
        export_lib.write(staging, model, options.exports)
        for name, data in (extra_files or {}).items():
            files.write_bytes(files.join(staging, name), data)
        if options.verify is not None:
            verified = staged.verify_staged(checkpoint, model_spec, model, staging, options,
                                            conversion_plan, unwritten_targets=_lost(report),
                                            legacy=legacy)
            report.verified = manifest[manifest_lib.VERIFIED_KEY] = verified.manifest_entry()
        manifest_lib.write(staging, manifest, known_digests=stream.digests)
    report.seconds = time.monotonic() - started
    if verified is not None and not verified.passed:
        raise staged.failure(verified, kept=str(output), unwritten_targets=_lost(report))
    return report


def conversion_report(checkpoint, table, conversion_plan, targets, *, options, output,
                      dry_run=False, recovered=()):
    """Returns the `ConversionReport` of a plan without problems, before anything is written.

    Args:
        checkpoint: the `LegacyCheckpoint` planned.
        table: the `MappingTable`.
        conversion_plan: its `ConversionPlan`.
        targets: the model's `TargetWeight`s by path (`plan_for_writing`).
        options: the `ConversionOptions`.
        output: the output directory, or None for a dry run.
        dry_run: nothing will be written.
        recovered: what `atomic.recover_previous` did to `output`.
    """
    return report_lib.ConversionReport(
        checkpoint=checkpoint.prefix, role_origin=checkpoint.role_origin, table=table.origin,
        output=output, keep=options.keep,
        roles=report_lib.role_totals(checkpoint.variables, conversion_plan),
        written_weights=len(conversion_plan.target_paths),
        written_bytes=sum(targets[path].nbytes for path in conversion_plan.target_paths),
        dropped=[variable.name for variable, _ in conversion_plan.dropped],
        unwritten_targets=[weight.path for weight in conversion_plan.unwritten_targets],
        ema=options.ema, ema_swapped=conversion_plan.ema_swapped, dry_run=dry_run,
        left_as_built=[[weight.path, rule.reason]
                       for weight, rule in conversion_plan.left_as_built],
        exports=list(options.exports), recovered=list(recovered),
        not_saved=list(checkpoint.not_saved))


def _lost(report):
    """The weights the output leaves out whose legacy values differ from the model's initial ones."""
    return [] if report.unwritten_at_initial else report.unwritten_targets


def inspect(checkpoint, *, options=None, graph=False):
    """Describes every variable of a legacy checkpoint and totals per role.

    Args:
        checkpoint: a legacy checkpoint prefix or directory, or a `LegacyCheckpoint`.
        options: a `ConversionOptions`; only `use_meta` and `builder` matter here.
        graph: also list the legacy graph's placeholders and candidate
            outputs (`migrate.source.graph_listing`), what verification feeds
            and compares.

    Returns:
        `{"checkpoint", "format", "role_origin", "variables": [...], "roles": {...}}`;
        `format` is "V2" or "V1" (TensorFlow's checkpoint formats); with
        `graph`, also `"graph": {"placeholders", "outputs", "more_outputs"}`.

    Raises:
        CheckpointError: `graph` is asked for and the checkpoint has none (no
            `.meta`, no builder).
    """
    checkpoint = open_checkpoint(checkpoint, options)
    if graph and not checkpoint.has_graph:
        raise CheckpointError(
            f"The checkpoint has no graph to list. Expected {checkpoint.prefix}.meta beside it, "
            f"or a builder (module:callable) that builds its graph. Received: "
            f"checkpoint={checkpoint.prefix!r}, builder=None", option="builder")
    description = {
        "checkpoint": checkpoint.prefix,
        "format": checkpoint.checkpoint_format,
        "role_origin": checkpoint.role_origin,
        "variables": [
            {"name": variable.name, "shape": list(variable.shape), "dtype": variable.dtype,
             "bytes": variable.nbytes, "role": variable.role.value,
             "role_source": variable.role_source.value, "reason": variable.reason}
            for variable in checkpoint.variables.values()
        ],
        "roles": report_lib.role_totals(checkpoint.variables),
        # Trainable graph variables the checkpoint lacks (made after the Saver): left out.
        "not_saved": list(checkpoint.not_saved),
    }
    if checkpoint.not_weights is not None:
        description["not_weights"] = [{"name": name, "reason": why}
                                      for name, why in checkpoint.not_weights.items()]
        description["folded"] = checkpoint.folded
    if graph:
        description["graph"] = graph_listing.describe(checkpoint.graph)
    return description


def verify(checkpoint, model, *, output_tensor=None, input_tensors=None, feeds=None, inputs=None,
           input_shapes=None, input_max=None, batch_size=DEFAULT_BATCH_SIZE, seed=0,
           tolerance=DEFAULT_TOLERANCE, ema=False, layers=False, table=None, converted=None,
           settings=None, input_tensor=None, input_shape=None, options=None, builder=None,
           legacy_dropout=None, keras_feeds=None, batch_axes=None):
    """Compares the legacy graph's output with the Keras model's on one batch.

    The legacy graph is imported from the checkpoint's `.meta` (or built by
    `builder`) and restored by a Saver in graph mode, in inference mode:
    dropout with a constant keep probability is switched off (see
    `legacy_dropout`), and a graph that gives two different outputs on the
    same input is refused with its random ops named. Without `input_tensors`, the placeholders
    the output depends on (not fed by `feeds`) are taken when they match the
    Keras model's inputs in number; they are ordered like the Keras inputs
    when named alike. No shape is ever guessed. The checkpoint is opened once
    and, when a table is known, the conversion planned once (for the
    layer-by-layer comparison); `migrate.verification.parity.verify` does the
    rest with what is opened here.

    Args:
        checkpoint: the legacy checkpoint prefix or directory (with a `.meta`,
            or see `builder`), or a `LegacyCheckpoint`.
        model: the Keras model, with the converted weights restored.
        output_tensor: the graph's output to compare, e.g. `logits:0`, or a
            dict `{Keras output: tensor}` of several compared at once (a dict
            output's key, an output layer's name, or an index), e.g.
            `{"sequence_output": "sequence_output:0", "pooled_output": "pooled_output:0"}`.
        input_tensors: placeholders fed to the Keras model's inputs, in order,
            e.g. `["input_ids:0", "token_type_ids:0"]`, or a dict pairing
            them with the Keras inputs by name, e.g.
            `{"token_ids": "input_ids:0", "segment_ids": "segment_ids:0"}`.
        keras_feeds: `{Keras input: constant}` for Keras inputs no placeholder
            feeds, at the shape of the paired inputs, e.g. `{"padding_mask": 1}`.
        feeds: `{placeholder: constant}` for placeholders the Keras model does
            not take, e.g. `{"istate:0": 0, "keep_prob:0": 1.0}`.
        inputs: real arrays by tensor name: an `.npz` path or a dict.
        input_shapes: per input, the shape without the batch dimension where
            the placeholder leaves sizes unknown (one entry for all).
        input_max: integer inputs are drawn from `[0, input_max)`: one int
            for all inputs or one per input; without it, ids are drawn below
            the row count of the embedding table the graph indexes with them.
        batch_axes: the axis of each input's batch (one int for all, or one
            per input), e.g. 1 for a time-major `[T, B]` placeholder; None
            reads it from the graph (an RNN unstacking the input as it is).
        batch_size: rows in the generated batch.
        seed: NumPy seed of the generated batch.
        tolerance: largest accepted `max_rel_diff`.
        ema: evaluate the legacy graph with its moving averages (compare with
            an output converted with `ema=True`).
        layers: also compare layer by layer (done anyway when parity fails).
        table: the mapping table (path or `MappingTable`) for the layer-by-layer
            comparison; else the one recorded in `converted`'s manifest.
        converted: the converted output directory whose manifest names the table.
        settings: a `VerifySettings` in place of the keyword arguments above.
        input_tensor, input_shape: one-input spellings (`input_tensor` may be
            comma-separated names).
        options: a `ConversionOptions`: where the roles and the graph come
            from (`use_meta`, `builder`).
        builder: for a checkpoint without `.meta`: a `legacy_graphs` name or
            `module:callable` naming a function that builds the TF1 graph in
            the default graph, as the model's code did (`options.builder`).
        legacy_dropout: "off" (default) sets dropout's constant keep
            probabilities to 1, naming each in the report; "as_saved" runs the
            graph as saved.

    Returns:
        A `VerifyReport`; `report.passed` tells whether the tolerance holds,
        `report.first_divergent_layer` names the first layer that differs.

    Raises:
        ArgumentError: tensors, feeds or shapes that do not fit the graph
            (an unfed placeholder is named with its dtype and shape).
        CheckpointError: no `.meta` and no builder, the graph cannot be
            restored or run, or it is not deterministic.
        ModelError: the Keras output's shape differs from the legacy one
            (beyond size-1 axes).

    Example:

        report = migrate.verify("bert/model.ckpt-3", model,
                                input_tensors=["input_ids:0", "token_type_ids:0"],
                                output_tensor="encoder/output:0", input_max=[30, 2])
        assert report.passed, report.summary()
    """
    if settings is None:
        settings = parity.settings_from_arguments(
            output_tensor=output_tensor, input_tensors=input_tensors, feeds=feeds, inputs=inputs,
            input_shapes=input_shapes, input_max=input_max, batch_size=batch_size, seed=seed,
            tolerance=tolerance, layers=layers, input_tensor=input_tensor,
            input_shape=input_shape, legacy_dropout=legacy_dropout, keras_feeds=keras_feeds,
            batch_axes=batch_axes)
    elif legacy_dropout is not None:
        settings = dataclasses.replace(settings, legacy_dropout=legacy_dropout)
    if builder is not None:
        options = dataclasses.replace(options or ConversionOptions(), builder=builder)
    checkpoint = open_checkpoint(checkpoint, options)
    table = _table_of_conversion(table, converted)
    conversion_plan = None
    if table is not None:
        # Every mapped variable, BatchNorm statistics included: the layers' sources.
        conversion_plan = plan_for_writing(checkpoint, table, model,
                                           ConversionOptions(keep="model_state"))[0]
    return parity.verify(checkpoint, model, settings, ema=ema, plan=conversion_plan,
                         arrays=inputs if isinstance(inputs, dict) else None)


def _table_of_conversion(table, converted):
    """Returns the mapping table given, the one `converted`'s manifest records, or None."""
    if table is not None:
        return load_table(table)
    if converted is not None:
        manifest_path = files.join(str(converted), manifest_lib.MANIFEST_NAME)
        if files.exists(manifest_path):
            path = (manifest_lib.read(str(converted)).get("table") or {}).get("path")
            if path and files.exists(path):
                return load_table(path)
    return None
