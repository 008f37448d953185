"""The conversion pipeline: open, plan, check, then write; the engine behind `migrate.convert`."""

import concurrent.futures
import datetime
import platform
import threading
import time

from migrate import files
from migrate import progress as progress_lib
from migrate import report as report_lib
from migrate import target_model
from migrate import writer
from migrate.legacy_checkpoint import LegacyCheckpoint
from migrate.plan import make_plan
from migrate.table import MappingTable

MANIFEST_FORMAT = "tf1-migrate/manifest/1"


def open_checkpoint(checkpoint, *, builder=None, use_meta=True):
    """Returns a `LegacyCheckpoint` for a path, or the checkpoint itself."""
    if isinstance(checkpoint, LegacyCheckpoint):
        return checkpoint
    return LegacyCheckpoint.open(checkpoint, builder=builder, use_meta=use_meta)


def load_table(table):
    """Returns a `MappingTable` for a path, or the table itself."""
    return table if isinstance(table, MappingTable) else MappingTable.load(table)


def load_model(model):
    """Returns a built Keras model from a model, a factory, or `module:callable` text."""
    if isinstance(model, str):
        return target_model.build(target_model.load_factory(model))
    if callable(model) and not hasattr(model, "trainable_weights"):
        return target_model.build(model)
    return target_model.build(lambda: model)


def plan(checkpoint, table, model, *, keep="trainable", ema=False):
    """Plans a conversion without reading tensor data or writing anything.

    Args:
        checkpoint: a legacy checkpoint prefix or directory, or a `LegacyCheckpoint`.
        table: a TOML table path or a `MappingTable`.
        model: a built Keras model, a factory returning one, or `module:callable`.
        keep: "trainable" (default) or "model_state".
        ema: read each variable's `ExponentialMovingAverage` shadow in its place.

    Returns:
        A `ConversionPlan` whose `problems` list every offender. The weights
        to be written are also checked to be reachable by a checkpoint.

    Example:

        conversion_plan = migrate.plan("train/model.ckpt-3", "table.toml", model)
        for problem in conversion_plan.problems:
            print(problem.describe())
    """
    checkpoint = open_checkpoint(checkpoint)
    table = load_table(table)
    model = load_model(model)
    return _plan(checkpoint, table, model, keep=keep, ema=ema)[0]


def _plan(checkpoint, table, model, *, keep, ema):
    """Plans and, when the plan has no problems, checks reachability.

    Returns:
        `(plan, weights, object_paths)`: `weights` as from
        `target_model.weights`, `object_paths` from `writer.reachable_paths`
        (None when the plan has problems).
    """
    weights = target_model.weights(model)
    conversion_plan = make_plan(
        checkpoint.variables, table, {path: weight for path, (weight, _) in weights.items()},
        keep=keep, ema_shadows=checkpoint.ema_shadows() if ema else None,
        resolve_parameters=_graph_parameters(checkpoint))
    object_paths = None
    if not conversion_plan.problems:
        object_paths = writer.reachable_paths(
            model, conversion_plan.target_paths,
            {path: variable for path, (_, variable) in weights.items()})
    return conversion_plan, weights, object_paths


def _graph_parameters(checkpoint):
    """Lets layout converters read their parameters from the legacy graph.

    A parameter the table leaves unset is taken from the graph; one the table
    sets must agree with the graph, since the graph is what actually ran.
    """
    if not checkpoint.has_graph:
        return None
    from migrate import layouts

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
                    f"the table sets {key}={table_value!r} but the graph in "
                    f"{checkpoint.meta_path} uses {key}={graph_value!r} for {scope}; remove the "
                    f"table value or fix it.")
        return resolved
    return resolve


def _same_value(first, second):
    if isinstance(first, (int, float)) and isinstance(second, (int, float)):
        return abs(float(first) - float(second)) <= 1e-6 * max(1.0, abs(float(second)))
    return first == second


def convert(checkpoint, table, model, output, *, keep="trainable", ema=False, overwrite=False,
            dry_run=False, allow_nonfinite=False, show_progress=False, model_name=None):
    """Converts a legacy checkpoint into a TF2 checkpoint for `model`.

    Plans first (every name mapped, every target filled once, shapes and
    dtypes agree, every weight reachable); only then reads tensors one at a
    time, assigns them into the model's variables, and writes the checkpoint
    and its `manifest.json` into a temporary directory renamed to `output`.

    Args:
        checkpoint: a legacy checkpoint prefix or directory, or a `LegacyCheckpoint`.
        table: a TOML table path or a `MappingTable`.
        model: a built Keras model, a factory returning one, or `module:callable`.
            Its weights are overwritten by the conversion.
        output: the output directory; it must not exist unless `overwrite`.
        keep: "trainable" (default: trainable weights only) or "model_state"
            (also the model's non-trainable weights, such as BatchNorm statistics).
        ema: read each variable's `ExponentialMovingAverage` shadow in its place.
        overwrite: replace an existing output directory.
        dry_run: plan and check only; write nothing.
        allow_nonfinite: carry NaN/Inf values instead of refusing them.
        show_progress: print progress to standard error.
        model_name: how the manifest names the model (e.g. `module:callable`).

    Returns:
        A `ConversionReport`.

    Raises:
        PlanError: the plan has problems (each offender is listed).
        CheckpointError, ModelError, OutputError, TableError: bad input.

    Example:

        report = migrate.convert("train/model.ckpt-3", "table.toml", model, "converted")
        print(report.summary())
    """
    started = time.monotonic()
    model_name = model_name or (model if isinstance(model, str) else None)
    checkpoint = open_checkpoint(checkpoint)
    table = load_table(table)
    if not dry_run:
        writer.check_output(output, overwrite=overwrite, source_files=checkpoint.source_files())
        source_entries = _hash_in_background(checkpoint.source_files())
    model = load_model(model)
    conversion_plan, weights, object_paths = _plan(checkpoint, table, model, keep=keep, ema=ema)
    conversion_plan.raise_for_problems()
    report = report_lib.ConversionReport(
        checkpoint=checkpoint.prefix, role_origin=checkpoint.role_origin, table=table.origin,
        output=None if dry_run else str(output), keep=keep,
        roles=report_lib.role_totals(checkpoint.variables, conversion_plan),
        written_weights=len(conversion_plan.target_paths),
        written_bytes=sum(weights[path][0].nbytes for path in conversion_plan.target_paths),
        dropped=[variable.name for variable, _ in conversion_plan.dropped],
        unwritten_targets=[weight.path for weight in conversion_plan.unwritten_targets],
        ema=ema, ema_swapped=conversion_plan.ema_swapped, dry_run=dry_run)
    if dry_run:
        return report
    variables_by_path = {path: variable for path, (_, variable) in weights.items()}
    progress = progress_lib.Progress(
        "convert", len(conversion_plan.assignments), report.written_bytes, enabled=show_progress)
    _, nonfinite = writer.execute(conversion_plan, checkpoint, variables_by_path,
                                  allow_nonfinite=allow_nonfinite, progress=progress)
    report.nonfinite = [[name, count] for name, count in nonfinite]
    manifest = _manifest(checkpoint, table, model, model_name, report, source_entries.result())
    root_children = writer.mirror(object_paths, variables_by_path,
                                  alias_model_children=not target_model.is_keras_3(model))
    writer.write_directory(output, root_children, manifest, overwrite=overwrite)
    report.seconds = time.monotonic() - started
    return report


def _hash_in_background(paths):
    """Starts hashing `paths` on a daemon thread; returns a Future of their manifest entries.

    Hashing a 1 GB checkpoint takes about a second. hashlib releases the GIL,
    so the hashing overlaps the model build and the conversion instead of
    following them; a daemon thread does not hold up the exit of a failed run.
    """
    future = concurrent.futures.Future()

    def hash_files():
        try:
            future.set_result([
                {"path": path, "sha256": files.sha256(path), "bytes": files.size(path)}
                for path in paths])
        except BaseException as error:  # Handed to the caller by `result()`.
            future.set_exception(error)

    threading.Thread(target=hash_files, name="tf1-migrate-source-hashes", daemon=True).start()
    return future


def _manifest(checkpoint, table, model, model_name, report, source_entries):
    import keras
    import tensorflow as tf

    from migrate import __version__

    return {
        "format": MANIFEST_FORMAT,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "versions": {"tf1-migrate": __version__, "tensorflow": tf.__version__,
                     "keras": keras.__version__ if target_model.is_keras_3(model)
                     else "tf_keras " + _tf_keras_version(), "python": platform.python_version()},
        "source": {
            "prefix": checkpoint.prefix,
            "role_origin": checkpoint.role_origin,
            "files": source_entries,
        },
        "table": {"path": table.origin, "sha256": table.sha256},
        "model": model_name or type(model).__name__,
        "keep": report.keep,
        "ema": report.ema,
        "ema_swapped": report.ema_swapped,
        "roles": report.roles,
        "written": {"weights": report.written_weights, "bytes": report.written_bytes},
        "dropped": report.dropped,
        "unwritten_targets": report.unwritten_targets,
        "nonfinite": report.nonfinite,
    }


def _tf_keras_version():
    try:
        import tf_keras
        return tf_keras.__version__
    except ImportError:
        return "unknown"


def inspect(checkpoint):
    """Describes every variable of a legacy checkpoint and totals per role.

    Returns:
        `{"checkpoint", "role_origin", "variables": [...], "roles": {...}}`.
    """
    checkpoint = open_checkpoint(checkpoint)
    return {
        "checkpoint": checkpoint.prefix,
        "role_origin": checkpoint.role_origin,
        "variables": [
            {"name": variable.name, "shape": list(variable.shape), "dtype": variable.dtype,
             "bytes": variable.nbytes, "role": variable.role.value,
             "role_source": variable.role_source.value, "reason": variable.reason}
            for variable in checkpoint.variables.values()
        ],
        "roles": report_lib.role_totals(checkpoint.variables),
    }
