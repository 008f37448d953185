"""The parent side of a batch's worker processes: starts them, feeds them jobs, survives their deaths.

`WorkerProcess` is one worker seen from the batch: a worker that dies or
hangs turns into a failed result for its checkpoint only. `plan_copies`
plans copies once per source layout in one worker that imports TensorFlow;
`run_pool` converts the jobs in several workers, replacing any that die.

Example:

    settings = jobs.BatchSettings(table="table.toml", table_text=text, table_sha256=digest,
                                  model="migrate.zoo.small_convnet:build_model")
    plans, jobs, planner = plan_copies(jobs, settings)
    results = run_pool(jobs, settings, workers=2, plans=plans,
                       ready=[planner] if planner else ())
"""

import collections
import concurrent.futures
import dataclasses
import json
import os
import re
import selectors
import signal
import subprocess
import sys
import tempfile
import threading
import time

from migrate import errors
from migrate.batch import copy_plan
from migrate.batch.jobs import ItemResult
from migrate.batch.jobs import Status
from migrate.batch.worker import ERROR_KEY
from migrate.batch.worker import ERROR_KIND_KEY
from migrate.batch.worker import PLAN_KEY
from migrate.batch.worker import PLANNING_KEY
from migrate.batch.worker import PLANS_KEY
from migrate.batch.worker import REASON_KEY
from migrate.batch.worker import STAGE_KEY
from migrate.batch.worker import STAGED_KEY
from migrate.batch.worker import WITH_MODEL_KEY
from migrate.batch.worker import WORKER_MODULE

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


class WorkerProcess:
    """One worker process, seen from the batch: a death turns into a failed result.

    Args:
        settings: a `BatchSettings`.
        verbose: let the worker's standard error through (TensorFlow's logs).
        plans: `{layout digest: CopyPlan text}` (`plan_copies`): the worker
            converts the jobs of those layouts by them.
        with_model: import TensorFlow and build the model at start; without
            it, the worker imports TensorFlow only for a job no plan covers.
            By default, a worker builds the model unless it has plans.
        planning: the worker plans copies (`request_plan`): it builds the
            model at start as a template, without its weights' values
            (`target.load_template`), and the model itself only if it converts.
    """

    def __init__(self, settings, *, verbose=False, plans=None, with_model=None, planning=False):
        self._settings = settings
        self._verbose = verbose
        self._plans = dict(plans or {})
        self.with_model = not self._plans if with_model is None else with_model
        self.planning = planning
        # The jobs it copied ahead (`submit(stage=True)`), which it finishes itself.
        self.staged = collections.deque()
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
                    WITH_MODEL_KEY: self.with_model, PLANNING_KEY: self.planning,
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

    def submit(self, job, *, stage=False):
        """Sends `job` to convert (`collect` reads the result), or with `stage`, to copy
        ahead of its plan (`collect_staged` reads the answer)."""
        self.job = job
        self.submitted_at = time.monotonic()
        if self._log is not None:
            self._log_offset = self._log.seek(0, os.SEEK_END)
        try:
            self._send({STAGE_KEY: job.to_json()} if stage else job.to_json())
        except BrokenPipeError:
            pass  # It died; `collect` (or `collect_staged`) reads the end of its output.

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

    def collect_staged(self):
        """Reads the answer to `submit(stage=True)`: True (the job joins `staged`), False (not
        staged), or None (the worker died)."""
        job, self.job = self.job, None
        message = self._read_message()
        if message is None:
            return None
        if message.get(STAGED_KEY):
            self.staged.append(job)
        return bool(message.get(STAGED_KEY))

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
                timeout_per_checkpoint=DEFAULT_TIMEOUT_SECONDS, store=None,
                on_planning=None, copy_ahead=0):
    """Plans copies once per source layout, in one worker process that imports TensorFlow.

    Each job's layout is read from its `.index` (and `.meta`) without
    TensorFlow; a layout whose plan the `store` holds is not planned again,
    and the first checkpoint of each other layout is planned
    (`copy_plan.make`, its plan then stored). The jobs of a layout that
    planned as a copy get its digest as their `layout`. The others keep the
    TensorFlow path, where each is planned on its own and fails, if it does,
    with its own line. When the store holds every layout's plan, no worker
    is started: nothing imports TensorFlow.

    While the planning worker imports TensorFlow and builds the model
    (seconds), `copy_ahead` copy workers, which import neither, copy the
    tensors of the jobs being planned into their outputs' temporary
    directories (`copy_plan.stage`); each such job is finished by its
    worker once the plan exists (`run_pool`), or converted anew if the plan
    is not what was copied.

    Args:
        jobs: the `Job`s.
        settings: a `BatchSettings`.
        verbose: let the workers' standard error through.
        timeout_per_checkpoint: seconds the planning or the copying ahead of
            one checkpoint may take; a worker that hangs on it is killed (and
            a layout it was planning is not planned).
        store: the output directory's `stored_plans.PlanStore`, or None.
        on_planning: called once before the planning worker starts (its
            TensorFlow import and model build take seconds), if it does.
        copy_ahead: how many copy workers copy ahead while the plans are made
            (the batch's number of workers: at most as many are returned ready).

    Returns:
        `(plans, jobs, ready)`: `{layout digest: CopyPlan text}`; the jobs, in
        order, with their `layout` set where a plan applies; and the started,
        ready workers, holding the plans (for `run_pool`), at most
        `copy_ahead`: the copy workers, each with the jobs it copied ahead in
        its `staged`, or, when no layout planned as a copy, the planning
        worker (it has TensorFlow imported) and the other copy workers.

    Raises:
        MigrateError: the worker could not load the table or the model.
    """
    if not copy_plan.may_copy(settings.options):
        return {}, list(jobs), []
    layouts = {}
    for job in jobs:
        layout, _ = copy_plan.source_layout(job.source, use_meta=settings.options.use_meta)
        if layout is not None:
            layouts[job.relative] = layout
    plans, first_jobs = {}, {}
    for job in jobs:
        layout = layouts.get(job.relative)
        if layout is None or layout in plans or layout in first_jobs:
            continue
        stored = store.get(layout) if store is not None else None
        if stored is not None:
            plans[layout] = stored
        else:
            first_jobs[layout] = job
    ready = []
    if first_jobs:
        if on_planning is not None:
            on_planning()
        copiers = [WorkerProcess(settings, verbose=verbose, with_model=False)
                   for _ in range(copy_ahead)]
        planners = []  # The planning thread's; a planner that dies is replaced.
        stopping = threading.Event()
        ready = list(copiers)
        # The planning waits on the planners' answers on a thread of its own,
        # while this one hands the copiers their jobs.
        thread = concurrent.futures.ThreadPoolExecutor(1, "tf1-migrate-plan")
        try:
            planning = thread.submit(_plan_layouts, settings, verbose, planners, stopping,
                                     first_jobs, store, timeout_per_checkpoint)
            for worker in copiers:
                worker.start()
            ahead = [job for job in jobs if layouts.get(job.relative) in first_jobs]
            ready = _copy_ahead(copiers, ahead, layouts, planning, timeout_per_checkpoint)
            plans.update(planning.result())
            # `copy_ahead` workers go on: the copiers, once a plan exists (a job
            # without one, a damaged or V1 checkpoint, they open before they import
            # TensorFlow); with none, the planner, which has TensorFlow imported (it
            # builds the model itself for its first job), in place of one.
            planner = planners[-1] if planners and planners[-1].alive else None
            if planner is not None and not plans:
                beside = max(copy_ahead - 1, 0)
                for copier in ready[beside:]:
                    copier.stop()
                ready = [planner, *ready[:beside]]
            elif planner is not None:
                planner.stop()
            for worker in ready:
                worker.add_plans(plans)
                # A job whose layout did not plan as a copy is not its copier's to finish.
                worker.staged = collections.deque(
                    job for job in worker.staged if layouts[job.relative] in plans)
        except BaseException as error:
            stopping.set()
            for worker in [*planners, *ready]:
                # A copier told to stop removes what it copied ahead; interrupted, all are killed.
                worker.stop(kill=worker in planners or not isinstance(error, Exception))
            raise
        finally:
            # Stopped planners let the thread end; one it started meanwhile is stopped after.
            thread.shutdown()
            if stopping.is_set():
                for planner in planners:
                    planner.stop(kill=True)
    return plans, [dataclasses.replace(job, layout=layouts[job.relative])
                   if layouts.get(job.relative) in plans else job for job in jobs], ready


def _plan_layouts(settings, verbose, planners, stopping, first_jobs, store, timeout):
    """Plans each layout from its first job in a planning worker; returns `{layout: text}`.

    A planner that dies on a checkpoint is replaced for the next layout
    (unless `stopping` is set); each one started is appended to `planners`
    (the caller stops them).
    """
    plans = {}
    for layout, job in first_jobs.items():
        if stopping.is_set():
            break
        if not planners or not planners[-1].alive:
            planners.append(WorkerProcess(settings, verbose=verbose, planning=True))
            planners[-1].start()
            planners[-1].wait_ready()
        text, _ = planners[-1].request_plan(job, timeout=timeout)
        if text is not None and copy_plan.CopyPlan.layout_of(text) == layout:
            plans[layout] = text
            if store is not None:
                store.put(layout, text)
    return plans


def _copy_ahead(copiers, jobs, layouts, planning, timeout):
    """Has the `copiers` copy `jobs` ahead (`copy_plan.stage`) until `planning` is done.

    A layout whose first staging is refused is not tried again (its plan is
    not expected to be copies). A copier that dies or hangs is stopped, and
    its jobs are converted as usual.

    Returns:
        The copiers still alive, ready, each with its `staged` jobs.
    """
    pending = collections.deque(jobs)
    refused = set()
    idle = list(copiers)
    alive = list(copiers)
    with selectors.DefaultSelector() as selector:
        for worker in copiers:
            try:
                worker.wait_ready()
            except errors.MigrateError:
                # The planner meets the same error, and the batch reports it from there.
                worker.stop(kill=True)
                alive.remove(worker)
                idle.remove(worker)
        while True:
            while idle and pending and not planning.done():
                job = pending.popleft()
                if layouts[job.relative] not in refused:
                    worker = idle.pop()
                    worker.submit(job, stage=True)
                    selector.register(worker, selectors.EVENT_READ)
            if not selector.get_map():
                break
            # While planning, look again now and then, to stop copying ahead once it is done.
            answered, timed_out = _wait_for_busy(
                selector, timeout, at_most=None if planning.done() else 0.05)
            for worker in answered:
                job, staged = worker.job, worker.collect_staged()
                if staged is None:  # It died: its jobs are converted as usual.
                    worker.stop()
                    alive.remove(worker)
                elif not staged:
                    refused.add(layouts[job.relative])
                    idle.append(worker)
                else:
                    idle.append(worker)
            for worker in timed_out:
                worker.stop(kill=True)
                alive.remove(worker)
    concurrent.futures.wait([planning])
    return alive


def _wait_for_busy(selector, timeout, *, at_most=None):
    """Waits until a worker registered in `selector` answers, or the oldest one's `timeout` ends.

    Args:
        selector: the busy workers, registered for reading.
        timeout: the seconds a worker may take over its job (from `submitted_at`).
        at_most: stop waiting after this many seconds, if given.

    Returns:
        `(answered, timed_out)`: the workers with an answer to read, and those
        past their time; both unregistered.
    """
    busy = [key.fileobj for key in selector.get_map().values()]
    wait = max(min(worker.submitted_at for worker in busy) + timeout - time.monotonic(), 0.0)
    answered = [key.fileobj for key, _ in
                selector.select(timeout=wait if at_most is None else min(wait, at_most))]
    for worker in answered:
        selector.unregister(worker)
    now = time.monotonic()
    timed_out = [key.fileobj for key in selector.get_map().values()
                 if now - key.fileobj.submitted_at >= timeout]
    for worker in timed_out:
        selector.unregister(worker)
    return answered, timed_out


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
        ready: started, ready workers to use first (`plan_copies`'s), each
            finishing the jobs it copied ahead (its `staged`); the pool stops them too.

    Returns:
        The `ItemResult`s in completion order.

    Raises:
        MigrateError: a worker could not load the table or the model.

    Example:

        results = run_pool(jobs, settings, workers=2, on_result=print)
    """
    pending = {job.relative: job for job in jobs}  # In job order.
    pool = list(ready)
    # A job a worker copied ahead is that worker's to finish, while it lives.
    reserved = {job.relative: worker for worker in pool for job in worker.staged}
    fresh_workers = [WorkerProcess(settings, verbose=verbose, plans=plans)
                     for _ in range(min(workers, len(jobs)) - len(pool))]
    results = []
    selector = selectors.DefaultSelector()
    finished = False

    def next_job(worker):
        while worker.staged:
            job = pending.pop(worker.staged.popleft().relative, None)
            if job is not None:
                return job
        for relative in pending:
            owner = reserved.get(relative)
            if owner is None or owner is worker or not owner.alive:
                return pending.pop(relative)
        return None

    def dispatch(worker):
        job = next_job(worker)
        if job is not None:
            worker.submit(job)
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
        # The dead worker's jobs copied ahead are anyone's now, idle workers' too.
        for other in pool:
            if other.alive and other.job is None:
                dispatch(other)

    try:
        pool.extend(fresh_workers)
        for worker in fresh_workers:
            worker.start()
        for worker in fresh_workers:
            worker.wait_ready()
        for worker in pool:
            dispatch(worker)
        while selector.get_map():
            answered, timed_out = _wait_for_busy(selector, timeout_per_checkpoint)
            for worker in answered:
                result, alive = worker.collect()
                deliver(result)
                if alive:
                    dispatch(worker)
                else:
                    worker.stop()
                    replace(worker)
            for worker in timed_out:
                deliver(worker.time_out(timeout_per_checkpoint))
                replace(worker)
        finished = True
    finally:
        selector.close()
        for worker in pool:
            # Interrupted (Ctrl-C) or failing: do not wait for conversions in flight.
            worker.stop(kill=not finished)
    return results
