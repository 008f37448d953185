"""Converts every legacy checkpoint under a directory into the same layout under another one.

The engine behind `migrate.convert_batch` and `python -m migrate batch`:
scan the input (recursively, never around a symlink loop), convert each
checkpoint prefix into its own output directory with a manifest (in worker
processes, or as an Apache Beam pipeline), skip outputs that are already up
to date, and write one batch report.
"""

import dataclasses
import json
import os
import re
import time

from migrate import batch_worker
from migrate import errors
from migrate import files
from migrate import progress as progress_lib
from migrate.batch_worker import Status

REPORT_NAME = "batch_report.json"
REPORT_FORMAT = "tf1-migrate/batch-report/1"
INDEX_SUFFIX = ".index"
DATA_INFIX = ".data-"
META_SUFFIX = ".meta"
STATE_FILE_NAME = "checkpoint"
LOCAL_RUNNER = "local"
BEAM_RUNNER = "beam"
RUNNERS = (LOCAL_RUNNER, BEAM_RUNNER)
_STEP_PART = re.compile(r"(\d+)")


@dataclasses.dataclass(frozen=True)
class FoundCheckpoint:
    """A checkpoint prefix found by `find_checkpoints`.

    Attributes:
        prefix: the full prefix, e.g. `train/run1/model.ckpt-1000`.
        relative: the prefix relative to the scanned directory, `/`-separated.
        source_bytes: size of its `.index`, data shards and `.meta`.
    """

    prefix: str
    relative: str
    source_bytes: int


@dataclasses.dataclass
class ScanResult:
    """What `find_checkpoints` found.

    Attributes:
        found: the `FoundCheckpoint`s, in natural order (`-2` before `-10`).
        notes: `{"path", "note"}` for what was not followed or chosen
            silently: symlink loops, directories reached twice, converted
            outputs, `--latest_only` choices made without a state file.
        failures: `{"path", "relative", "reason"}` for what could not be
            scanned; each counts as a failed item of the batch.
    """

    found: list = dataclasses.field(default_factory=list)
    notes: list = dataclasses.field(default_factory=list)
    failures: list = dataclasses.field(default_factory=list)


def find_checkpoints(input_dir, *, latest_only=False, exclude=()):
    """Finds every legacy checkpoint prefix under a directory.

    A prefix is any `<name>.index` file. The walk goes through
    `tf.io.gfile` and scans every directory once: symlinked directories come
    after the real ones (so a directory is found under its own path), and a
    symlink back to one of its own ancestors is reported, not followed.
    Directories holding a `manifest.json` are converted outputs and are not
    scanned.

    Args:
        input_dir: the directory to scan, recursively (local, gs://, ...).
        latest_only: per directory, only the newest entry of its `checkpoint`
            state file (without a state file: the highest step, noted).
        exclude: directories to leave out, such as the batch's own output.

    Returns:
        A `ScanResult`.

    Raises:
        CheckpointError: `input_dir` is not a directory.

    Example:

        scan = find_checkpoints("train", latest_only=True)
        print([found.relative for found in scan.found])
    """
    from migrate import writer

    root = _strip(input_dir)
    if not files.is_directory(root):
        raise errors.CheckpointError(
            f"Expected an input directory holding legacy checkpoints. Received: "
            f"input_dir={str(input_dir)!r}, which is not a directory.")
    excluded = {_identity(_strip(path)) for path in exclude}
    result = ScanResult()
    seen = {}
    # Symlinked directories wait until every real directory has been scanned,
    # so a directory is reported under its own path rather than through a link.
    stack, linked = [(root, ())], []
    while stack or linked:
        directory, chain = stack.pop() if stack else linked.pop(0)
        identity = _identity(directory)
        relative = _relative(root, directory)
        if identity in chain:
            note = f"symlink loop back to {seen[identity]}; not followed"
            result.notes.append({"path": relative, "note": note})
            continue
        if identity in seen:
            note = f"same directory as {seen[identity]}; not scanned twice"
            result.notes.append({"path": relative, "note": note})
            continue
        seen[identity] = relative or "the input directory"
        chain += (identity,)
        try:
            names = sorted(name.rstrip("/") for name in files.gfile().listdir(directory))
        except Exception as error:  # tf.errors.PermissionDeniedError and friends.
            result.failures.append({"path": directory, "relative": relative,
                                    "reason": f"Cannot list directory {directory}: "
                                              f"{errors.first_line(error)}"})
            continue
        if writer.MANIFEST_NAME in names:
            result.notes.append({"path": relative, "note": f"holds a {writer.MANIFEST_NAME}: a "
                                                           f"converted output, not scanned"})
            continue
        _add_prefixes(result, root, directory, names, latest_only)
        subdirectories = []
        for name in names:
            path = files.join(directory, name)
            if (_is_checkpoint_file(name) or not files.is_directory(path)
                    or _identity(path) in excluded):
                continue
            (linked if _is_link(path) else subdirectories).append((path, chain))
        stack.extend(reversed(subdirectories))
    result.found.sort(key=lambda found: _natural_key(found.relative))
    return result


def _add_prefixes(result, root, directory, names, latest_only):
    prefixes = sorted((name[:-len(INDEX_SUFFIX)] for name in names if name.endswith(INDEX_SUFFIX)),
                      key=_natural_key)
    if not prefixes:
        return
    relative = _relative(root, directory)
    if latest_only and STATE_FILE_NAME in names:
        import tensorflow as tf

        state_path = files.join(directory, STATE_FILE_NAME)
        # get_checkpoint_state returns None for a file it cannot parse.
        state = tf.train.get_checkpoint_state(directory)
        if state is None or not state.model_checkpoint_path:
            result.failures.append({"path": state_path, "relative": relative, "reason": (
                f"The checkpoint state file {state_path} cannot be parsed or names no "
                f"checkpoint.")})
            return
        # Only the name counts: state files often hold absolute paths from the
        # machine that trained, which no longer exist where the files are now.
        newest = files.basename(state.model_checkpoint_path)
        if newest not in prefixes:
            result.failures.append({"path": state_path, "relative": relative, "reason": (
                f"The checkpoint state file {state_path} names {state.model_checkpoint_path}, "
                f"which is not a checkpoint in {directory}. Expected one of: "
                f"{', '.join(prefixes)}.")})
            return
        prefixes = [newest]
    elif latest_only and len(prefixes) > 1:
        result.notes.append({"path": relative or ".", "note": (
            f"no `{STATE_FILE_NAME}` state file; took the highest step, {prefixes[-1]}")})
        prefixes = prefixes[-1:]
    for prefix in prefixes:
        owned = [name for name in names if name in (prefix + INDEX_SUFFIX, prefix + META_SUFFIX)
                 or name.startswith(prefix + DATA_INFIX)]
        path = files.join(directory, prefix)
        result.found.append(FoundCheckpoint(
            prefix=path, relative=_relative(root, path),
            source_bytes=sum(files.size(files.join(directory, name)) for name in owned)))


def _is_checkpoint_file(name):
    return (name.endswith(INDEX_SUFFIX) or name.endswith(META_SUFFIX) or DATA_INFIX in name
            or name == STATE_FILE_NAME)


def _strip(path):
    path = str(path)
    return path.rstrip("/") or path


def _is_link(path):
    return "://" not in path and os.path.islink(path)


def _identity(path):
    # Only local filesystems have symlinks; other tf.io.gfile filesystems
    # (gs://, ram://, ...) name every directory by one path.
    return path if "://" in path else os.path.realpath(path)


def _relative(root, path):
    return path[len(root):].lstrip("/") if path != root else ""


def _natural_key(text):
    return [(0, int(part), "") if part.isdigit() else (1, 0, part)
            for part in _STEP_PART.split(text) if part]


@dataclasses.dataclass
class BatchReport:
    """What a batch conversion did with every checkpoint.

    Attributes:
        input_dir, output_dir: the batch's directories.
        table, table_sha256, model, keep, ema: how it converted.
        runner: "local" or "beam".
        workers: local worker processes (0: in this process).
        items: one `batch_worker.ItemResult` per checkpoint (and per
            directory that could not be scanned), in natural order.
        scan_notes: `ScanResult.notes`.
        seconds: wall time.
        report_path: where the JSON report was written.
    """

    input_dir: str
    output_dir: str
    table: str
    table_sha256: str
    model: str
    keep: str
    ema: bool
    runner: str
    workers: int
    items: list
    scan_notes: list
    seconds: float = 0.0
    report_path: str = ""

    def with_status(self, status):
        """Returns the items whose status is `status` (a `Status` or its value)."""
        return [item for item in self.items if item.status == Status(status).value]

    @property
    def ok(self):
        return not self.with_status(Status.FAILED)

    def totals(self):
        """Returns counts per status and bytes over the outputs that exist now."""
        done = [item for item in self.items if item.status != Status.FAILED.value]
        return {
            "checkpoints": len(self.items),
            **{status.value: len(self.with_status(status)) for status in Status},
            "source_bytes": sum(item.source_bytes for item in self.items),
            "kept_bytes": sum(item.kept_bytes for item in done),
            "dropped_bytes": sum(item.dropped_bytes for item in done),
            "left_out_bytes": sum(item.left_out_bytes for item in done),
        }

    def to_json(self):
        document = dataclasses.asdict(self)
        document["format"] = REPORT_FORMAT
        document["items"] = [item.to_json() for item in self.items]
        document["totals"] = self.totals()
        document["ok"] = self.ok
        return document

    def summary(self):
        """Returns a few lines a person can read: counts, bytes, each failure and scan note."""
        totals = self.totals()
        where = "in this process" if self.workers == 0 else f"{self.workers} worker(s)"
        lines = [
            f"Batch {self.input_dir} -> {self.output_dir}: {totals['checkpoints']} checkpoint(s), "
            f"{self.seconds:.1f}s ({where if self.runner == LOCAL_RUNNER else 'Apache Beam'})",
            f"  converted {totals['converted']}, skipped {totals['skipped']} (up to date), "
            f"failed {totals['failed']}",
            f"  kept {progress_lib.format_bytes(totals['kept_bytes'])}, dropped by rules "
            f"{progress_lib.format_bytes(totals['dropped_bytes'])}, left out (optimizer slots, "
            f"EMA shadows, bookkeeping, ...) {progress_lib.format_bytes(totals['left_out_bytes'])}",
        ]
        lines.extend(f"  failed {item.relative or item.source}: {item.reason}"
                     for item in self.with_status(Status.FAILED))
        lines.extend(f"  note {note['path']}: {note['note']}" for note in self.scan_notes)
        if self.report_path:
            lines.append(f"  report {self.report_path}")
        return "\n".join(lines)


def convert_batch(input_dir, output_dir, table, model, *, latest_only=False, workers=1,
                  force=False, keep="trainable", ema=False, allow_nonfinite=False, use_meta=True,
                  builder=None, runner=LOCAL_RUNNER, beam_options=(), show_progress=False,
                  verbose=False):
    """Converts every legacy checkpoint under `input_dir`, mirroring its layout under `output_dir`.

    `input_dir/run1/model.ckpt-1000` becomes the converted output directory
    `output_dir/run1/model.ckpt-1000/` (with its `manifest.json`). TensorFlow
    is imported and the model built once per worker process, not per
    checkpoint. A checkpoint that fails, or whose worker dies in native code,
    is reported and the others go on. Outputs whose manifest matches the
    source files' hashes, the table and the settings are skipped unless
    `force`. The report is also written to `output_dir/batch_report.json`.

    Args:
        input_dir: directory scanned recursively for checkpoint prefixes.
        output_dir: where the outputs go; created if needed.
        table: the mapping table's path (or a `MappingTable` loaded from a file);
            workers receive its text, so they need no access to it.
        model: the model factory as `module:callable`, or an importable
            function; every worker builds the model from it.
        latest_only: per directory, only its `checkpoint` state file's newest entry.
        workers: worker processes converting in parallel; 0 converts in this
            process, without crash isolation.
        force: convert again outputs that are up to date (and replace
            directories that are not converted outputs).
        keep, ema, allow_nonfinite: as for `migrate.convert`.
        use_meta, builder: where variable roles come from, as for `migrate.inspect`.
        runner: "local" (worker processes) or "beam" (an Apache Beam pipeline;
            needs the `beam` extra).
        beam_options: Beam pipeline arguments, e.g. `["--runner=DataflowRunner", ...]`.
        show_progress: show a progress bar (a terminal) or log lines on standard error.
        verbose: let the workers' TensorFlow logs through.

    Returns:
        A `BatchReport`; `report.ok` is False when any checkpoint failed.

    Raises:
        CheckpointError: `input_dir` is not a directory or holds no checkpoint.
        OutputError: `output_dir` is the input directory or cannot be created.
        TableError, ModelError: the table or the model cannot be loaded (no
            checkpoint could be converted).

    Example:

        report = migrate.convert_batch("train", "converted", "table.toml",
                                       "migrate.zoo.small_convnet:build_model", workers=2)
        print(report.summary())
    """
    started = time.monotonic()
    if runner not in RUNNERS:
        raise ValueError(f"Expected runner to be one of {', '.join(RUNNERS)}. "
                         f"Received: runner={runner!r}")
    if not isinstance(workers, int) or workers < 0:
        raise ValueError(
            f"Expected workers to be a whole number >= 0. Received: workers={workers!r}")
    input_dir, output_dir = _strip(input_dir), _strip(output_dir)
    loaded, text = _table_and_text(table)
    settings = batch_worker.BatchSettings(
        table=loaded.origin, table_text=text, table_sha256=loaded.sha256,
        model=_factory_text(model), keep=keep, ema=ema, allow_nonfinite=allow_nonfinite,
        use_meta=use_meta, builder=builder, force=force)
    if _identity(output_dir) == _identity(input_dir):
        raise errors.OutputError(
            f"Expected an output directory other than the input directory. Received: "
            f"output_dir={output_dir!r}, the same as input_dir.")
    scan = find_checkpoints(input_dir, latest_only=latest_only, exclude=[output_dir])
    if not (scan.found or scan.failures):
        raise errors.CheckpointError(
            f"Expected legacy checkpoints (files such as run1/model.ckpt-1000.index) under "
            f"{input_dir}. Received: none.")
    try:
        files.gfile().makedirs(output_dir)
    except Exception as error:
        raise errors.OutputError(
            f"Cannot create output directory {output_dir}: {errors.first_line(error)}") from None
    jobs = [batch_worker.Job(source=found.prefix, relative=found.relative,
                             output=files.join(output_dir, found.relative),
                             source_bytes=found.source_bytes) for found in scan.found]
    results = _run(jobs, settings, runner=runner, workers=workers, output_dir=output_dir,
                   beam_options=beam_options, show_progress=show_progress, verbose=verbose)
    items = [batch_worker.ItemResult(source=failure["path"], relative=failure["relative"],
                                     output="", status=Status.FAILED.value,
                                     reason=failure["reason"]) for failure in scan.failures]
    items.extend(results)
    items.sort(key=lambda item: _natural_key(item.relative))
    report = BatchReport(
        input_dir=input_dir, output_dir=output_dir, table=loaded.origin,
        table_sha256=loaded.sha256, model=settings.model, keep=keep, ema=ema, runner=runner,
        workers=workers if runner == LOCAL_RUNNER else 0, items=items, scan_notes=scan.notes,
        report_path=files.join(output_dir, REPORT_NAME))
    report.seconds = round(time.monotonic() - started, 3)
    files.write_bytes(report.report_path,
                      (json.dumps(report.to_json(), indent=2, sort_keys=True) + "\n").encode())
    return report


def _run(jobs, settings, *, runner, workers, output_dir, beam_options, show_progress, verbose):
    if not jobs:
        return []
    if runner == BEAM_RUNNER:
        return _beam_runner().run(jobs, settings, output_dir=output_dir,
                                  pipeline_args=list(beam_options), verbose=verbose)
    progress = progress_lib.Progress("batch", len(jobs), sum(job.source_bytes for job in jobs),
                                     enabled=show_progress)

    def on_result(result):
        progress.advance(1, result.source_bytes, f"{result.relative}: {result.status}")

    # Up-to-date outputs are found here, so a rerun with nothing to do never
    # starts a worker (each imports TensorFlow and builds the model).
    results, remaining = [], []
    for job in jobs:
        skipped = batch_worker.skipped_result(job, settings)
        if skipped is None:
            remaining.append(job)
        else:
            results.append(skipped)
            on_result(skipped)
    settings = dataclasses.replace(settings, check_current=False)
    try:
        if not remaining:
            return results
        if workers == 0:
            return results + batch_worker.run_in_process(remaining, settings, on_result=on_result)
        return results + batch_worker.run_pool(remaining, settings, workers=workers,
                                               on_result=on_result, verbose=verbose)
    finally:
        progress.close()


def _beam_runner():
    try:
        from migrate import beam_runner
    except ImportError as error:
        if (error.name or "").startswith("apache_beam"):
            raise errors.MigrateError(
                "runner=beam needs Apache Beam, which is not installed: "
                "pip install 'tf1-migrate[beam]'") from None
        raise
    return beam_runner


def _table_and_text(table):
    """Returns `(MappingTable, TOML text)`: workers get the text, not a path they may not reach."""
    from migrate.table import MappingTable

    path = table.origin if isinstance(table, MappingTable) else str(table)
    try:
        data = files.read_bytes(path)
    except Exception as error:  # tf.errors.NotFoundError and friends.
        if isinstance(table, MappingTable):
            raise errors.TableError(
                f"A batch sends its workers the table's file, and this table came from "
                f"{table.origin}, which cannot be read: {errors.first_line(error)}") from None
        raise errors.TableError(
            f"Cannot read mapping table {path}: {errors.first_line(error)}") from None
    loaded = MappingTable.from_bytes(data, origin=path)
    if isinstance(table, MappingTable) and loaded.sha256 != table.sha256:
        raise errors.TableError(
            f"Mapping table {path} on disk differs from the table passed in; a batch's workers "
            f"get the file's text, so save the table first.")
    return loaded, data.decode("utf-8")


def _factory_text(model):
    if isinstance(model, str):
        return model
    module = getattr(model, "__module__", None)
    name = getattr(model, "__qualname__", "")
    if callable(model) and module and module != "__main__" and name.isidentifier():
        return f"{module}:{name}"
    raise errors.ModelError(
        f"A batch builds the model in every worker process, so it needs the model factory as "
        f"module:callable text or an importable module-level function. Received: {model!r}")
