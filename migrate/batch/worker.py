"""Converts batch jobs one checkpoint at a time, in worker processes that may die without harm.

A worker is `python -m migrate.batch_worker`: it loads the table, imports
TensorFlow and builds the Keras model once, then reads one JSON job per line
on standard input and answers one JSON result per line. TensorFlow's native
checkpoint reader can abort or crash on a damaged file; when that happens
only the worker dies, its checkpoint is reported as failed with the signal,
and a fresh worker takes the next job.

When the conversion is a copy (`copy_plan`), one such worker plans it once
per source layout (`plan_copies`), and the workers that convert are given
the plans instead: they import neither TensorFlow nor Keras, and start in a
fraction of a second.

Example:

    settings = BatchSettings(table="table.toml", table_text=text, table_sha256=digest,
                             model="migrate.zoo.small_convnet:build_model")
    results = run_pool(jobs, settings, workers=2)
"""

import collections
import dataclasses
import enum
import json
import os
import re
import selectors
import signal
import subprocess
import sys
import tempfile
import time

from migrate import errors
from migrate import pipeline
from migrate.batch import copy_plan
from migrate.batch import failures
from migrate.mapping.table import MappingTable
from migrate.options import ConversionOptions
from migrate.output import manifest
from migrate.planning import target as target_model
from migrate.source import locate

WORKER_MODULE = "migrate.batch.worker"
UP_TO_DATE = "up to date"
READY_KEY = "ready"
ERROR_KEY = "error"
ERROR_KIND_KEY = "kind"
PLAN_KEY = "plan"
PLANS_KEY = "plans"
REASON_KEY = "reason"
WITH_MODEL_KEY = "with_model"
_STOP_SECONDS = 10
# A checkpoint whose worker sends no result for this long is given up on:
# generous, since a multi-GB checkpoint on a slow filesystem takes minutes.
DEFAULT_TIMEOUT_SECONDS = 1800.0
_READ_BYTES = 1 << 16
_CRASH_NOTE_CHARACTERS = 300
# Lines that never say why a worker died: absl's note before the first log
# line of a process, and TensorFlow's INFO, WARNING and ERROR lines ("I0000
# 00:00:... cudart_stub.cc:31] ...", "E0000 ... failed call to cuInit"),
# which a worker that imports TensorFlow only for this checkpoint (the others
# were copied by a plan) writes after the job started. A failed CHECK is "F...".
_NOT_A_CAUSE = re.compile(r"WARNING: All log messages before absl::InitializeLog\(\)"
                          r"|[IWE]\d{4} \d\d:\d\d:\d\d")


class Status(str, enum.Enum):
    """What happened to one checkpoint of a batch."""

    CONVERTED = "converted"
    SKIPPED = "skipped"
    FAILED = "failed"
    # The batch was interrupted (Ctrl-C) before this checkpoint was converted.
    NOT_STARTED = "not started"


@dataclasses.dataclass(frozen=True, kw_only=True)
class BatchSettings:
    """How every checkpoint of a batch is converted; sent to each worker as JSON.

    Attributes:
        table: where the mapping table came from (its path), for manifests.
        table_text: the table's TOML; workers parse it themselves, so they
            need no access to the launcher's files.
        table_sha256: the digest of that TOML.
        model: the Keras model factory as `module:callable`.
        options: the `ConversionOptions` every checkpoint is converted with.
        force: convert again even when an output is up to date.
        check_current: look for an up-to-date output before converting; the
            local runner checks in the parent and turns this off for workers.
        hash_sources: record (and, to skip an output, compare) every source
            file's full SHA-256, not only the fingerprint from metadata.
        recheck_outputs: re-hash an existing output's files before skipping it,
            instead of checking that they are there with their sizes.
    """

    table: str
    table_text: str
    table_sha256: str
    model: str
    options: ConversionOptions = ConversionOptions()
    force: bool = False
    check_current: bool = True
    hash_sources: bool = False
    recheck_outputs: bool = False

    def to_json(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, document):
        return cls(**{**document, "options": ConversionOptions.from_json(document["options"])})


@dataclasses.dataclass(frozen=True, kw_only=True)
class Job:
    """One checkpoint to convert.

    Attributes:
        source: the legacy checkpoint prefix.
        relative: the prefix relative to the batch's input directory.
        output: the output directory (the same relative path under the batch's output).
        source_bytes: size of the checkpoint's files, for progress.
        layout: the `copy_plan.source_layout` digest of a checkpoint converted
            by a copy plan (`plan_copies`); empty for the TensorFlow path.
    """

    source: str
    relative: str
    output: str
    source_bytes: int = 0
    layout: str = ""

    def to_json(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, document):
        return cls(**document)


@dataclasses.dataclass(kw_only=True)
class ItemResult:
    """What a batch did with one checkpoint.

    Attributes:
        source, relative, output: as in `Job`.
        status: a `Status` value.
        reason: why it was skipped or failed; empty when converted.
        source_bytes: size of the checkpoint's files.
        kept_bytes, dropped_bytes, left_out_bytes: legacy variable bytes
            carried into the output, dropped by table rules, and left out by
            role (optimizer slots, EMA shadows, bookkeeping, ...).
        written_weights: model weights the output holds.
        warnings: the conversion's warnings.
        seconds: time spent on this checkpoint.
        verify_failed: it failed because the converted model's output differs
            from the legacy graph's (`ConversionOptions.verify`).
        deterministic: it failed for a reason that recurs while the
            checkpoint and the settings are unchanged (`failures.is_deterministic`),
            so the batch remembers it.
        fingerprint: with `deterministic`, the checkpoint's metadata
            fingerprint, taken before it was converted.
        failed_before: not converted this time: it failed before, and
            neither it nor the settings changed since (`reason` is that failure's).
    """

    source: str
    relative: str
    output: str
    status: str
    reason: str = ""
    source_bytes: int = 0
    kept_bytes: int = 0
    dropped_bytes: int = 0
    left_out_bytes: int = 0
    written_weights: int = 0
    warnings: list = dataclasses.field(default_factory=list)
    seconds: float = 0.0
    verify_failed: bool = False
    deterministic: bool = False
    fingerprint: str = ""
    failed_before: bool = False

    @classmethod
    def for_job(cls, job, status, reason="", **fields):
        return cls(source=job.source, relative=job.relative, output=job.output,
                   source_bytes=job.source_bytes, status=Status(status).value, reason=reason,
                   **fields)

    def to_json(self):
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, document):
        return cls(**document)


def role_bytes(roles):
    """Returns `(kept, dropped, left_out)` bytes summed over a report's or manifest's roles."""
    return tuple(sum(entry.get(key, 0) for entry in roles.values())
                 for key in ("kept_bytes", "dropped_bytes", "left_out_bytes"))


def current_manifest(job, settings):
    """Returns the output's manifest if it already holds this conversion of this source, else None."""
    try:
        paths = locate.source_files(job.source, use_meta=settings.options.use_meta)
    except errors.CheckpointError:
        return None
    return manifest.is_current(job.output, paths, table_sha256=settings.table_sha256,
                               model=settings.model, options=settings.options,
                               hash_sources=settings.hash_sources,
                               recheck_outputs=settings.recheck_outputs)


def skipped_result(job, settings):
    """Returns a skipped `ItemResult` if the output is up to date (and not forced), else None."""
    if settings.force:
        return None
    current = current_manifest(job, settings)
    if current is None:
        return None
    kept, dropped, left_out = role_bytes(current["roles"])
    return ItemResult.for_job(job, Status.SKIPPED, UP_TO_DATE, kept_bytes=kept,
                              dropped_bytes=dropped, left_out_bytes=left_out,
                              written_weights=current["written"]["weights"])


class Converter:
    """Converts jobs one at a time with one table and one model, both loaded once.

    The model is the template of every output (`convert(fill_model=False)`):
    weights whose stored bytes need no change are copied from each
    checkpoint's data file into its output, the others are assigned into the
    model and written from it. Only the planned weights are written, so a
    weight the plan leaves unwritten never carries a previous checkpoint's
    value into an output.

    Given copy plans, it converts the jobs of their layouts by them
    (`copy_plan.execute`), without TensorFlow, and builds the model only if
    a job of another layout comes.

    Args:
        settings: a `BatchSettings`.
        plans: `{layout digest: CopyPlan text}` (`copy_plan.CopyPlan.to_text`).
        with_model: build the model now (else on the first job no plan covers).

    Raises:
        TableError: the table is not valid, or not the one its digest names.
        ModelError: the model factory fails.
    """

    def __init__(self, settings, *, plans=None, with_model=True):
        self._settings = settings
        self._table = MappingTable.from_text(settings.table_text, origin=settings.table)
        if self._table.sha256 != settings.table_sha256:
            raise errors.TableError(
                f"Mapping table {settings.table} is not the one the batch started with: expected "
                f"SHA-256 {settings.table_sha256}, received {self._table.sha256}.")
        self._plans = {}
        self.add_plans(plans or {})
        self._model = self._load_model() if with_model else None

    def add_plans(self, plans):
        """Converts the jobs of these layouts by their copy plans from now on.

        Args:
            plans: `{layout digest: CopyPlan text}`, read against this table.
        """
        self._plans.update({layout: copy_plan.CopyPlan.from_text(text, self._table)
                            for layout, text in plans.items()})

    def _load_model(self):
        factory = target_model.load_factory(self._settings.model)
        # A factory that sizes its model from the checkpoint builds one per job.
        return (self._settings.model if target_model.takes_checkpoint(factory)
                else target_model.load_model(factory))

    def plan_copy(self, job):
        """Plans `job`'s conversion as a copy plan for its whole layout; never raises.

        Returns:
            `{PLAN_KEY: CopyPlan text}`, or `{REASON_KEY: why not}`.
        """
        settings = self._settings
        try:
            if self._model is None:
                self._model = self._load_model()
            if isinstance(self._model, str):
                raise copy_plan.NotCopyOnly("the model factory sizes its model from each "
                                            "checkpoint")
            checkpoint = pipeline.open_checkpoint(job.source, settings.options)
            plan = copy_plan.make(checkpoint, self._table, self._model, options=settings.options,
                                  model_name=settings.model)
        except Exception as error:  # Planned on its own, each checkpoint fails with its own line.
            return {REASON_KEY: errors.first_line(error)}
        return {PLAN_KEY: plan.to_text()}

    def convert(self, job):
        """Converts one job (or skips it when its output is up to date); never raises.

        Returns:
            An `ItemResult`.
        """
        started = time.monotonic()
        # Taken first: a checkpoint that changes while it is converted is
        # then never remembered as failing in its new state.
        fingerprint = failures.source_fingerprint(job.source)
        try:
            result = self._convert(job)
        except errors.MigrateError as error:
            deterministic = bool(fingerprint) and failures.is_deterministic(error)
            result = ItemResult.for_job(
                job, Status.FAILED, errors.first_line(error),
                verify_failed=isinstance(error, errors.VerificationError),
                deterministic=deterministic, fingerprint=fingerprint if deterministic else "")
        except Exception as error:  # A bug or an unexpected TensorFlow failure: one item only.
            result = ItemResult.for_job(
                job, Status.FAILED, f"{type(error).__name__}: {errors.first_line(error)}")
        result.seconds = round(time.monotonic() - started, 3)
        return result

    def _convert(self, job):
        settings = self._settings
        skipped = skipped_result(job, settings) if settings.check_current else None
        if skipped is not None:
            return skipped
        plan = self._plans.get(job.layout)
        if plan is not None:
            report = copy_plan.execute(plan, job.source, job.output, options=settings.options,
                                       hash_sources=settings.hash_sources)
        else:
            if self._model is None:
                self._model = self._load_model()
            # convert(overwrite=True) refuses to replace anything that is not a
            # converted output (no manifest.json), so a stray directory is safe.
            checkpoint = pipeline.open_checkpoint(job.source, settings.options, read_ahead=True)
            report = pipeline.convert(
                checkpoint, self._table, self._model, job.output, options=settings.options,
                overwrite=True, model_name=settings.model, hash_sources=settings.hash_sources,
                fill_model=False)
        kept, dropped, left_out = role_bytes(report.roles)
        return ItemResult.for_job(
            job, Status.CONVERTED, kept_bytes=kept, dropped_bytes=dropped,
            left_out_bytes=left_out, written_weights=report.written_weights,
            warnings=report.warnings)


def run_in_process(jobs, settings, *, on_result=None):
    """Converts jobs in this process, without crash isolation (for `workers=0`).

    Returns:
        The `ItemResult`s in job order.
    """
    converter = Converter(settings)
    results = []
    for job in jobs:
        results.append(converter.convert(job))
        if on_result is not None:
            on_result(results[-1])
    return results


class WorkerProcess:
    """One worker process, seen from the batch: a death turns into a failed result.

    Args:
        settings: a `BatchSettings`.
        verbose: let the worker's standard error through (TensorFlow's logs).
        plans: `{layout digest: CopyPlan text}` (`plan_copies`): the worker
            converts the jobs of those layouts by them.
        with_model: import TensorFlow and build the model at start; without
            it (and with plans), the worker imports TensorFlow only for a
            job no plan covers.
    """

    def __init__(self, settings, *, verbose=False, plans=None, with_model=True):
        self._settings = settings
        self._verbose = verbose
        self._plans = dict(plans or {})
        self.with_model = with_model or not self._plans
        self._process = None
        self._log = None
        self._buffer = b""
        self.job = None
        self.submitted_at = None
        self._log_offset = 0

    def start(self):
        """Starts the process; it imports TensorFlow and builds the model meanwhile (unless it
        has copy plans)."""
        environment = dict(os.environ)
        environment.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        if self._settings.options.builder:
            environment["TF_USE_LEGACY_KERAS"] = "1"
        else:
            # Keras 2 behind tf.keras is only for legacy builders' graphs.
            environment.pop("TF_USE_LEGACY_KERAS", None)
        self._log = None if self._verbose else tempfile.TemporaryFile()
        self._process = subprocess.Popen(
            [sys.executable, "-m", WORKER_MODULE], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=self._log, env=environment, close_fds=True)
        # The worker finds the model factory's module where this process does.
        self._send({"settings": self._settings.to_json(), PLANS_KEY: self._plans,
                    WITH_MODEL_KEY: self.with_model,
                    "sys_path": [path for path in sys.path if path]})

    def wait_ready(self):
        """Waits until the model is built.

        Raises:
            MigrateError: the worker could not load the table or the model
                (the same error class as in this process), or died.
        """
        message = self._read_message()
        if message is None:
            raise errors.ModelError(
                f"A batch worker died while starting: {self._death(last_line=True)}")
        if ERROR_KEY in message:
            kind = getattr(errors, message.get(ERROR_KIND_KEY, ""), None)
            if not (isinstance(kind, type) and issubclass(kind, errors.MigrateError)):
                kind = errors.MigrateError
            raise kind(message[ERROR_KEY])

    @property
    def alive(self):
        """False once the process is stopped (or died and was stopped)."""
        return self._process is not None

    def fileno(self):
        return self._process.stdout.fileno()

    def submit(self, job):
        self.job = job
        self.submitted_at = time.monotonic()
        if self._log is not None:
            self._log_offset = self._log.seek(0, os.SEEK_END)
        try:
            self._send(job.to_json())
        except BrokenPipeError:
            pass  # It died; `collect` reads the end of its output and says how.

    def collect(self):
        """Waits for the submitted job's result; a dead worker's job comes back as failed.

        Returns:
            `(ItemResult, alive)`.
        """
        job, self.job = self.job, None
        message = self._read_message()
        if message is None:
            return ItemResult.for_job(job, Status.FAILED, self._death()), False
        return ItemResult.from_json(message), True

    def request_plan(self, job, *, timeout=DEFAULT_TIMEOUT_SECONDS):
        """Asks the (ready) worker for a copy plan made from `job`'s checkpoint.

        Args:
            job: the `Job` whose checkpoint is planned.
            timeout: seconds the planning may take (a checkpoint can hang a
                worker while it is planned as while it is converted).

        Returns:
            `(CopyPlan text, "")`, or `(None, why not)`; a worker that died,
            or sent nothing in time, is stopped then.
        """
        self._send({PLAN_KEY: job.to_json()})
        if b"\n" not in self._buffer:
            with selectors.DefaultSelector() as selector:
                selector.register(self, selectors.EVENT_READ)
                if not selector.select(timeout):
                    self.stop(kill=True)
                    return None, (f"timed out: no plan after {timeout:g} s "
                                  f"(timeout_per_checkpoint); the worker was killed")
        message = self._read_message()
        if message is None:
            reason = self._death()
            self.stop()
            return None, reason
        return message.get(PLAN_KEY), message.get(REASON_KEY, "")

    def add_plans(self, plans):
        """Hands the (ready, idle) worker copy plans for the jobs that follow."""
        self._plans.update(plans)
        self._send({PLANS_KEY: plans})

    def time_out(self, seconds):
        """Kills a worker that sent no result for its job in time; returns the job as failed."""
        job, self.job = self.job, None
        self.stop(kill=True)
        return ItemResult.for_job(
            job, Status.FAILED, f"timed out: no result after {seconds:g} s "
                                f"(timeout_per_checkpoint); the worker was killed")

    def stop(self, *, kill=False):
        """Ends the process: closes its input, then kills it if it does not exit.

        Args:
            kill: kill it at once (it is hung, or the batch was interrupted).
        """
        if self._process is None:
            return
        try:
            self._process.stdin.close()
        except OSError:
            pass
        try:
            if kill:
                self._process.kill()
            self._process.wait(timeout=_STOP_SECONDS)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process.stdout.close()
        if self._log is not None:
            self._log.close()
        self._process = None

    def _send(self, document):
        self._process.stdin.write((json.dumps(document) + "\n").encode("utf-8"))
        self._process.stdin.flush()

    def _read_message(self):
        while b"\n" not in self._buffer:
            chunk = os.read(self.fileno(), _READ_BYTES)
            if not chunk:
                return None
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return json.loads(line)

    def _death(self, *, last_line=False):
        code = self._process.wait()
        if code < 0:
            how = f"the worker process died with {signal.Signals(-code).name}"
        else:
            how = f"the worker process exited with code {code}"
        note = self._log_line(last=last_line)
        where = "" if last_line else " while converting this checkpoint"
        return how + where + (f" ({note})" if note else "")

    def _log_line(self, *, last):
        """Returns a line the worker wrote to standard error since the job started, if any.

        The first line of a crash is the native error (TensorFlow's failed
        CHECK, or faulthandler's "Fatal Python error"); the last line of a
        start-up failure is the Python exception.
        """
        if self._log is None:
            return ""
        self._log.seek(self._log_offset)
        text = self._log.read().decode("utf-8", "replace")
        lines = [line.strip() for line in text.splitlines()
                 if line.strip() and not _NOT_A_CAUSE.match(line.strip())]
        if not lines:
            return ""
        return (lines[-1] if last else lines[0])[:_CRASH_NOTE_CHARACTERS]


def plan_copies(jobs, settings, *, verbose=False,
                timeout_per_checkpoint=DEFAULT_TIMEOUT_SECONDS):
    """Plans copies once per source layout, in one worker process that imports TensorFlow.

    Each job's layout is read from its `.index` (and `.meta`) without
    TensorFlow; the first checkpoint of each layout is planned
    (`copy_plan.make`), and the jobs of a layout that planned as a copy get
    its digest as their `layout`. The others keep the TensorFlow path, where
    each is planned on its own and fails, if it does, with its own line.

    Args:
        jobs: the `Job`s.
        settings: a `BatchSettings`.
        verbose: let the planning worker's standard error through.
        timeout_per_checkpoint: seconds the planning of one checkpoint may take;
            a worker that hangs on it is killed, and its layout not planned.

    Returns:
        `(plans, jobs, planner)`: `{layout digest: CopyPlan text}`; the jobs,
        in order, with their `layout` set where a plan applies; and the
        planning worker, ready, holding the plans (for `run_pool`), or None.

    Raises:
        MigrateError: the worker could not load the table or the model.
    """
    if not copy_plan.may_copy(settings.options):
        return {}, list(jobs), None
    layouts = {}
    for job in jobs:
        layout, _ = copy_plan.source_layout(job.source, use_meta=settings.options.use_meta)
        if layout is not None:
            layouts[job.relative] = layout
    plans, tried = {}, set()
    planner = None
    try:
        for job in jobs:
            layout = layouts.get(job.relative)
            if layout is None or layout in tried:
                continue
            tried.add(layout)
            if planner is None:
                planner = WorkerProcess(settings, verbose=verbose)
                planner.start()
                planner.wait_ready()
            text, _ = planner.request_plan(job, timeout=timeout_per_checkpoint)
            if text is not None and copy_plan.CopyPlan.layout_of(text) == layout:
                plans[layout] = text
            if not planner.alive:  # It died on this checkpoint.
                planner = None
        if planner is not None and plans:
            planner.add_plans(plans)
    except BaseException:
        if planner is not None:
            planner.stop(kill=True)
        raise
    return plans, [dataclasses.replace(job, layout=layouts[job.relative])
                   if layouts.get(job.relative) in plans else job for job in jobs], planner


def run_pool(jobs, settings, *, workers, on_result=None, verbose=False,
             timeout_per_checkpoint=DEFAULT_TIMEOUT_SECONDS, plans=None, ready=()):
    """Converts jobs in `workers` worker processes, replacing any that die or hang.

    Args:
        jobs: the `Job`s.
        settings: a `BatchSettings`.
        workers: number of worker processes (at least 1).
        on_result: called with each `ItemResult` as it arrives.
        verbose: let the workers' standard error through.
        timeout_per_checkpoint: seconds a worker may take over one checkpoint;
            a worker that sends no result in that time is killed, its
            checkpoint reported as timed out, and a fresh worker goes on.
        plans: `{layout digest: CopyPlan text}` from `plan_copies`; the
            workers import TensorFlow only for jobs of no planned layout.
        ready: started, ready workers to use first (`plan_copies`'s planner);
            the pool stops them too.

    Returns:
        The `ItemResult`s in completion order.

    Raises:
        MigrateError: a worker could not load the table or the model.

    Example:

        results = run_pool(jobs, settings, workers=2, on_result=print)
    """
    pending = collections.deque(jobs)
    pool = list(ready)
    fresh_workers = [WorkerProcess(settings, verbose=verbose, plans=plans, with_model=False)
                     for _ in range(min(workers, len(jobs)) - len(pool))]
    results = []
    selector = selectors.DefaultSelector()
    finished = False

    def dispatch(worker):
        if pending:
            worker.submit(pending.popleft())
            selector.register(worker, selectors.EVENT_READ)

    def deliver(result):
        results.append(result)
        if on_result is not None:
            on_result(result)

    def replace(worker):
        pool.remove(worker)
        if not pending:
            return
        # One like it: a worker with the model stays one (a copy worker imports no TensorFlow).
        fresh = WorkerProcess(settings, verbose=verbose, plans=plans,
                              with_model=worker.with_model)
        pool.append(fresh)
        fresh.start()
        fresh.wait_ready()
        dispatch(fresh)

    try:
        pool.extend(fresh_workers)
        for worker in fresh_workers:
            worker.start()
        for worker in fresh_workers:
            worker.wait_ready()
        for worker in pool:
            dispatch(worker)
        while selector.get_map():
            now = time.monotonic()
            busy = [key.fileobj for key in selector.get_map().values()]
            deadline = min(worker.submitted_at for worker in busy) + timeout_per_checkpoint
            ready = selector.select(timeout=max(deadline - now, 0.0))
            for key, _ in ready:
                worker = key.fileobj
                selector.unregister(worker)
                result, alive = worker.collect()
                deliver(result)
                if alive:
                    dispatch(worker)
                else:
                    worker.stop()
                    replace(worker)
            now = time.monotonic()
            for worker in [key.fileobj for key in selector.get_map().values()]:
                if now - worker.submitted_at >= timeout_per_checkpoint:
                    selector.unregister(worker)
                    deliver(worker.time_out(timeout_per_checkpoint))
                    replace(worker)
        finished = True
    finally:
        selector.close()
        for worker in pool:
            # Interrupted (Ctrl-C) or failing: do not wait for conversions in flight.
            worker.stop(kill=not finished)
    return results


def main():
    """The worker's loop: settings first, then one job per line until standard input closes.

    Returns:
        The exit code: 0, or 1 when the table or the model could not be loaded.
    """
    import faulthandler

    # Anything TensorFlow or a model factory prints must not land in the
    # result stream, so standard output is moved to standard error.
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    faulthandler.enable()

    def send(document):
        protocol.write(json.dumps(document) + "\n")
        protocol.flush()

    start = json.loads(sys.stdin.readline())
    sys.path[:0] = [path for path in start["sys_path"] if path not in sys.path]
    plans = start.get(PLANS_KEY, {})
    with_model = start.get(WITH_MODEL_KEY, True)
    try:
        if with_model:  # A copy worker imports TensorFlow only for a job of another layout.
            import tensorflow as tf

            tf.get_logger().setLevel("ERROR")
        converter = Converter(BatchSettings.from_json(start["settings"]), plans=plans,
                              with_model=with_model)
    except errors.MigrateError as error:
        send({ERROR_KEY: str(error), ERROR_KIND_KEY: type(error).__name__})
        return 1
    send({READY_KEY: True})
    for line in sys.stdin:
        message = json.loads(line)
        if PLAN_KEY in message:
            send(converter.plan_copy(Job.from_json(message[PLAN_KEY])))
            continue
        if PLANS_KEY in message:
            converter.add_plans(message[PLANS_KEY])
            continue
        send(converter.convert(Job.from_json(message)).to_json())
    return 0



def exit_now(code):
    """Ends the worker at once, once what it wrote is flushed.

    Every output is complete and renamed into place before its result is
    sent, so nothing is left to finish; an ordinary exit would spend a
    second or more tearing down TensorFlow and the model (measured: 1.2 s
    for vgg_16), and the batch waits for its workers to end.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    exit_now(main())
