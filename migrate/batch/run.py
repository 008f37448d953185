"""Converts every legacy checkpoint under a directory into the same layout under another one.

The engine behind `migrate.convert_batch` and `python -m migrate batch`:
scan the input (recursively, never around a symlink loop), convert each
checkpoint prefix into its own output directory with a manifest (in worker
processes, or as an Apache Beam pipeline), skip outputs that are already up
to date, and write one batch report.
"""

import collections
import dataclasses
import json
import time

from migrate import errors
from migrate import files
from migrate import progress as progress_lib
from migrate.batch import failures
from migrate.batch import jobs as batch_jobs
from migrate.batch import pool as batch_pool
from migrate.batch import scan
from migrate.batch import stored_plans
from migrate.batch import worker as batch_worker
from migrate.batch.jobs import Status
from migrate.batch.scan import find_checkpoints
from migrate.mapping.table import MappingTable
from migrate.options import ConversionOptions
from migrate.output import atomic

REPORT_NAME = "batch_report.json"
REPORT_FORMAT = "tf1-migrate/batch-report/1"
LOCAL_RUNNER = "local"
BEAM_RUNNER = "beam"
RUNNERS = (LOCAL_RUNNER, BEAM_RUNNER)
# The totals' count of checkpoints that failed verification (also counted as failed).
VERIFY_FAILED = "verify_failed"
# The totals' count of checkpoints not retried: they failed before and nothing
# they depend on changed (also counted as failed).
FAILED_BEFORE = "failed_before"


class BatchInterrupted(KeyboardInterrupt):
    """A batch stopped by Ctrl-C; its partial report has been written.

    Attributes:
        report: the `BatchReport`: what was converted or failed, and what
            was not started.
    """

    def __init__(self, report):
        super().__init__(f"batch interrupted; partial report {report.report_path}")
        self.report = report


@dataclasses.dataclass
class BatchReport:
    """What a batch conversion did with every checkpoint.

    Attributes:
        input_dir, output_dir: the batch's directories.
        table, table_sha256, model, keep, ema: how it converted.
        runner: "local" or "beam".
        workers: local worker processes (0: in this process).
        items: one `batch_jobs.ItemResult` per checkpoint (and per
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
        done = [item for item in self.items
                if item.status in (Status.CONVERTED.value, Status.SKIPPED.value)]
        return {
            "checkpoints": len(self.items),
            **{status.value: len(self.with_status(status)) for status in Status},
            VERIFY_FAILED: sum(item.verify_failed for item in self.items),
            FAILED_BEFORE: sum(item.failed_before for item in self.items),
            "source_bytes": sum(item.source_bytes for item in self.items),
            "kept_bytes": sum(item.kept_bytes for item in done),
            "dropped_bytes": sum(item.dropped_bytes for item in done),
            "left_out_bytes": sum(item.left_out_bytes for item in done),
        }

    def to_json(self):
        # Field by field: `dataclasses.asdict` would copy every item twice.
        document = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
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
        details = [f"{totals[VERIFY_FAILED]} verification"] if totals[VERIFY_FAILED] else []
        if totals[FAILED_BEFORE]:
            details.append(f"{totals[FAILED_BEFORE]} {failures.FAILED_BEFORE}, not retried")
        if details:
            lines[1] += f" ({'; '.join(details)})"
        if totals[Status.NOT_STARTED.value]:
            lines[1] += f", not started {totals[Status.NOT_STARTED.value]} (interrupted)"
        lines.extend(f"  failed {item.relative or item.source}: "
                     f"{failures.FAILED_BEFORE + ': ' if item.failed_before else ''}{item.reason}"
                     for item in self.with_status(Status.FAILED))
        warned = collections.Counter(warning for item in self.items for warning in item.warnings)
        lines.extend(f"  warning ({count} checkpoint(s)): {warning}"
                     for warning, count in warned.items())
        lines.extend(f"  note {note['path']}: {note['note']}" for note in self.scan_notes)
        if self.report_path:
            lines.append(f"  report {self.report_path}")
        return "\n".join(lines)


def check_timeout(timeout_per_checkpoint):
    """Checks `convert_batch`'s `timeout_per_checkpoint`: a number of seconds > 0.

    Raises:
        ArgumentError: anything else.

    Example:

    >>> check_timeout(0)
    Traceback (most recent call last):
    ...
    migrate.errors.ArgumentError: Expected timeout_per_checkpoint to be a number of seconds > 0. \
Received: timeout_per_checkpoint=0
    """
    if (isinstance(timeout_per_checkpoint, bool)
            or not isinstance(timeout_per_checkpoint, (int, float))
            or not timeout_per_checkpoint > 0):
        raise errors.ArgumentError(
            f"Expected timeout_per_checkpoint to be a number of seconds > 0. Received: "
            f"timeout_per_checkpoint={timeout_per_checkpoint!r}", option="timeout_per_checkpoint")


def convert_batch(input_dir, output_dir, table, model, *, latest_only=False, workers=1,
                  force=False, options=None, runner=LOCAL_RUNNER, beam_options=(), show_progress=False,
                  verbose=False, hash_sources=False, recheck_outputs=False, retry_failed=False,
                  timeout_per_checkpoint=batch_pool.DEFAULT_TIMEOUT_SECONDS):
    """Converts every legacy checkpoint under `input_dir`, mirroring its layout under `output_dir`.

    `input_dir/run1/model.ckpt-1000` becomes the converted output directory
    `output_dir/run1/model.ckpt-1000/` (with its `manifest.json`). When every
    weight is stored bytes copied or a NumPy transform (`copy_plan`), the
    conversion is planned once per source layout, in one worker process that
    imports TensorFlow and builds the model, and the other workers convert
    without importing TensorFlow; each such plan is kept in
    `output_dir/batch_plans/` (`stored_plans`), and a later batch into the
    same directory plans nothing a stored plan covers: with
    every checkpoint covered, no process imports TensorFlow. Otherwise
    TensorFlow is imported and the model built once per worker process, not
    per checkpoint. A checkpoint
    that fails, or whose worker dies in native code
    or hangs, is reported and the others go on. Outputs whose manifest matches
    the source's fingerprint (its `.index`, `.meta` and data files' names and
    sizes: no data is read), the table, the model and the whole
    `ConversionOptions` are skipped unless `force`. A checkpoint that failed
    for a reason of its own (damaged, a plan problem, a failed verification)
    is remembered in `output_dir/batch_failures.json` and not retried while
    it, the table, the model, the options and the toolkit's version are
    unchanged: it is reported as failed before, unchanged, with the earlier
    reason (timeouts, killed workers and I/O errors are always retried). The
    report is also written to `output_dir/batch_report.json`, on Ctrl-C too.

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
            directories that are not converted outputs), and plan anew what
            the stored copy plans cover.
        options: a `ConversionOptions`, as for `migrate.convert`.
        runner: "local" (worker processes) or "beam" (an Apache Beam pipeline;
            needs the `beam` extra).
        beam_options: Beam pipeline arguments, e.g. `["--runner=DataflowRunner", ...]`.
        show_progress: show a progress bar (a terminal) or log lines on standard error.
        verbose: let the workers' TensorFlow logs through.
        hash_sources: record every source file's full SHA-256 in the manifests,
            and skip an output only when they all still match (reads every
            byte of every checkpoint, optimizer slots included).
        recheck_outputs: re-hash an existing output's files before skipping
            it, instead of checking that they are all there with their sizes.
        retry_failed: convert again checkpoints that failed before with a
            deterministic error although nothing they depend on changed.
        timeout_per_checkpoint: seconds a local worker may spend on one
            checkpoint before it is killed and the checkpoint reported as
            timed out.

    Returns:
        A `BatchReport`; `report.ok` is False when any checkpoint failed.

    Raises:
        ArgumentError: an argument is not valid.
        CheckpointError: `input_dir` is not a directory or holds no checkpoint.
        OutputError: `output_dir` is the input directory or cannot be created.
        TableError, ModelError: the table or the model cannot be loaded (no
            checkpoint could be converted).
        BatchInterrupted: Ctrl-C; the partial report (converted, failed, not
            started) has been written first.

    Example:

        report = migrate.convert_batch("train", "converted", "table.toml",
                                       "migrate.zoo.small_convnet:build_model", workers=2)
        print(report.summary())
    """
    started = time.monotonic()
    if runner not in RUNNERS:
        raise errors.ArgumentError(f"Expected runner to be one of {', '.join(RUNNERS)}. "
                                   f"Received: runner={runner!r}")
    if not isinstance(workers, int) or isinstance(workers, bool) or workers < 0:
        raise errors.ArgumentError(
            f"Expected workers to be a whole number >= 0. Received: workers={workers!r}")
    check_timeout(timeout_per_checkpoint)
    for name, value in (("hash_sources", hash_sources), ("recheck_outputs", recheck_outputs),
                        ("retry_failed", retry_failed)):
        if not isinstance(value, bool):
            raise errors.ArgumentError(
                f"Expected {name} to be True or False. Received: {name}={value!r}")
    input_dir, output_dir = scan.strip_slashes(input_dir), scan.strip_slashes(output_dir)
    loaded, text = _table_and_text(table)
    settings = batch_jobs.BatchSettings(
        table=loaded.origin, table_text=text, table_sha256=loaded.sha256,
        model=_factory_text(model), options=options or ConversionOptions(), force=force,
        hash_sources=hash_sources, recheck_outputs=recheck_outputs)
    if scan.directory_identity(output_dir) == scan.directory_identity(input_dir):
        raise errors.OutputError(
            f"Expected an output directory other than the input directory. Received: "
            f"output_dir={output_dir!r}, the same as input_dir.")
    scanned = find_checkpoints(input_dir, latest_only=latest_only, exclude=[output_dir])
    if not (scanned.found or scanned.failures):
        raise errors.CheckpointError(
            f"Expected legacy checkpoints (files such as run1/model.ckpt-1000.index) under "
            f"{input_dir}. Received: none.")
    try:
        files.makedirs(output_dir)
    except Exception as error:
        raise errors.OutputError(
            f"Cannot create output directory {output_dir}: {errors.first_line(error)}") from None
    jobs = [batch_jobs.Job(source=found.prefix, relative=found.relative,
                             output=files.join(output_dir, found.relative),
                             source_bytes=found.source_bytes) for found in scanned.found]
    notes = list(scanned.notes)
    listed = {}
    for job in jobs:
        # A run killed while replacing an output left NAME.previous-*; each
        # output's parent directory is listed once for all of its outputs.
        parent = files.dirname(job.output)
        if parent not in listed:
            listed[parent] = _listing(parent)
        notes.extend({"path": job.relative, "note": note}
                     for note in atomic.recover_previous(job.output, names=listed[parent]))
    report = BatchReport(
        input_dir=input_dir, output_dir=output_dir, table=loaded.origin,
        table_sha256=loaded.sha256, model=settings.model, keep=settings.options.keep,
        ema=settings.options.ema, runner=runner,
        workers=workers if runner == LOCAL_RUNNER else 0, items=[], scan_notes=notes,
        report_path=files.join(output_dir, REPORT_NAME))
    report.items = [batch_jobs.ItemResult(source=failure["path"], relative=failure["relative"],
                                            output="", status=Status.FAILED.value,
                                            reason=failure["reason"])
                    for failure in scanned.failures]
    # Failures remembered from earlier runs that still hold start no worker.
    remembered = failures.read(output_dir)
    key = failures.settings_key(settings)
    results, runnable = [], []
    for job in jobs:
        record = remembered.get(job.relative)
        if (record is not None and not (force or retry_failed)
                and failures.still_fails(record, job.source, key)):
            results.append(batch_jobs.ItemResult.for_job(
                job, Status.FAILED, record["reason"],
                verify_failed=bool(record.get("verify_failed")), deterministic=True,
                fingerprint=record["fingerprint"], failed_before=True))
        else:
            runnable.append(job)
    # Copy plans kept from earlier batches into this output directory.
    store = stored_plans.open_store(output_dir, settings, loaded)
    try:
        _run(runnable, settings, results, runner=runner, workers=workers, output_dir=output_dir,
             beam_options=beam_options, show_progress=show_progress, verbose=verbose,
             timeout_per_checkpoint=timeout_per_checkpoint,
             source_files={found.relative: found.files for found in scanned.found}, store=store)
    except KeyboardInterrupt:
        _finish(report, results, jobs, started, remembered, key, store)
        raise BatchInterrupted(report) from None
    _finish(report, results, jobs, started, remembered, key, store)
    return report


def _finish(report, results, jobs, started, remembered, key, store):
    """Completes the report (jobs without a result were not started), writes it and the failures.

    The failures' record keeps what this run did not look at (checkpoints
    outside it, e.g. with `latest_only`) and, for its own checkpoints, the
    deterministic failures as they stand now. The stored plans' notes join
    the scan's.
    """
    if store is not None:
        report.scan_notes.extend(store.notes)
    done = {result.relative for result in results}
    missing = [batch_jobs.ItemResult.for_job(
        job, Status.NOT_STARTED, "the batch was interrupted before this checkpoint was converted")
        for job in jobs if job.relative not in done]
    report.items.extend(results + missing)
    report.items.sort(key=lambda item: scan.natural_key(item.relative))
    report.seconds = round(time.monotonic() - started, 3)
    records = {relative: record for relative, record in remembered.items()
               if relative not in {job.relative for job in jobs}}
    for item in results:
        if item.status == Status.FAILED.value and item.deterministic:
            records[item.relative] = (remembered[item.relative] if item.failed_before
                                      else failures.make_record(item, key))
    if records != remembered:
        failures.write(report.output_dir, records)
    files.write_bytes(report.report_path,
                      (json.dumps(report.to_json(), indent=2, sort_keys=True) + "\n").encode())


def _run(jobs, settings, results, *, runner, workers, output_dir, beam_options, show_progress,
         verbose, timeout_per_checkpoint, source_files, store):
    """Converts `jobs`, appending each `ItemResult` to `results` as it arrives.

    `source_files`: `{relative: FoundCheckpoint.files}`, the scan's own
    finding, so that deciding what is up to date lists no directory again.
    `store`: the output directory's `stored_plans.PlanStore`, or None.
    """
    if not jobs:
        return
    if runner == BEAM_RUNNER:
        results.extend(_beam_runner().run(jobs, settings, output_dir=output_dir,
                                          pipeline_args=list(beam_options), verbose=verbose,
                                          store=store))
        return
    # Up-to-date outputs are found here, so a rerun with nothing to do never
    # starts a worker (each imports TensorFlow and builds the model).
    remaining = []
    for job in jobs:
        skipped = batch_jobs.skipped_result(job, settings,
                                            source_files=source_files.get(job.relative))
        if skipped is None:
            remaining.append(job)
        else:
            results.append(skipped)
    settings = dataclasses.replace(settings, check_current=False)
    if not remaining:
        return
    progress = progress_lib.Progress("batch", len(remaining),
                                     sum(job.source_bytes for job in remaining),
                                     enabled=show_progress)
    # In this process, TensorFlow is imported and the model built before the
    # first checkpoint; with workers, only when a layout has no stored plan.
    where, starting = (("in this process", "starting (TensorFlow import and model build) ...")
                       if workers == 0 else
                       (f"with {min(workers, len(remaining))} worker(s)", "starting ..."))
    progress.start(f"batch: {len(jobs)} checkpoint(s), {len(jobs) - len(remaining)} up to date; "
                   f"converting {len(remaining)} "
                   f"({progress_lib.format_bytes(progress.total_bytes)}) {where}; {starting}")

    def on_result(result):
        results.append(result)
        progress.advance(1, result.source_bytes, f"{result.relative}: {result.status}")

    try:
        if workers == 0:
            batch_worker.run_in_process(remaining, settings, on_result=on_result)
        else:
            # Planned once per source layout; the workers that copy import no
            # TensorFlow, and copy ahead while the plans are made.
            copy_ahead = min(workers, len(remaining))
            plans, remaining, ready = batch_pool.plan_copies(
                remaining, settings, verbose=verbose,
                timeout_per_checkpoint=timeout_per_checkpoint, store=store,
                copy_ahead=copy_ahead, on_planning=lambda: progress.note(
                    f"batch: planning the copies (TensorFlow import and model build); "
                    f"{copy_ahead} worker(s) copying ahead meanwhile ..."))
            batch_pool.run_pool(remaining, settings, workers=workers, on_result=on_result,
                                  verbose=verbose, timeout_per_checkpoint=timeout_per_checkpoint,
                                  plans=plans, ready=ready)
    finally:
        progress.close()


def _listing(directory):
    """The names in `directory`; none when it does not exist yet (or cannot be listed)."""
    try:
        return files.listdir(directory)
    except Exception:  # OSError or tf.errors.NotFoundError: nothing there to recover.
        return []


def _beam_runner():
    try:
        # Here, not at the top: beam.py imports apache_beam, an optional extra.
        from migrate.batch import beam as beam_runner
    except ImportError as error:
        if (error.name or "").startswith("apache_beam"):
            raise errors.MigrateError(
                "runner=beam needs Apache Beam, which is not installed: "
                "pip install 'tf1-migrate[beam]'") from None
        raise
    return beam_runner


def _table_and_text(table):
    """Returns `(MappingTable, TOML text)`: workers get the text, not a path they may not reach."""
    path = table.origin if isinstance(table, MappingTable) else str(table)
    try:
        data = files.read_bytes(path)
    except Exception as error:  # OSError, or tf.errors.NotFoundError and friends for a URL.
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
