"""The worker process of a batch: converts one checkpoint at a time, and may die without harm.

A worker is `python -m migrate.batch.worker`: it loads the table, imports
TensorFlow and builds the Keras model once, then reads one JSON job per line
on standard input and answers one JSON result per line. TensorFlow's native
checkpoint reader can abort or crash on a damaged file; when that happens
only the worker dies, and the parent (`pool.WorkerProcess`) reports its
checkpoint as failed with the signal and starts a fresh worker.

Given copy plans (`pool.plan_copies`), a worker converts the checkpoints of
those layouts by them: it imports neither TensorFlow nor Keras, and starts
in a fraction of a second. `run_in_process` converts the same way in the
calling process, without that isolation (`workers=0`).

Example:

    converter = Converter(settings)   # a `jobs.BatchSettings`
    result = converter.convert(job)   # a `jobs.ItemResult`; never raises
"""

import json
import os
import sys
import time

from migrate import errors
from migrate import pipeline
from migrate.batch import copy_plan
from migrate.batch import failures
from migrate.batch.jobs import BatchSettings
from migrate.batch.jobs import ItemResult
from migrate.batch.jobs import Job
from migrate.batch.jobs import Status
from migrate.batch.jobs import role_bytes
from migrate.batch.jobs import skipped_result
from migrate.mapping.table import MappingTable
from migrate.planning import target as target_model

WORKER_MODULE = "migrate.batch.worker"
# The keys of the messages between the parent and a worker (one JSON document a line).
READY_KEY = "ready"
ERROR_KEY = "error"
ERROR_KIND_KEY = "kind"
PLAN_KEY = "plan"
PLANS_KEY = "plans"
REASON_KEY = "reason"
STAGE_KEY = "stage"
STAGED_KEY = "staged"
WITH_MODEL_KEY = "with_model"
PLANNING_KEY = "planning"


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
        planning: with `with_model`, build it now as a template to plan with
            (`target.load_template`: without its weights' values), and the
            model itself on the first job to convert.

    Raises:
        TableError: the table is not valid, or not the one its digest names.
        ModelError: the model factory fails.
    """

    def __init__(self, settings, *, plans=None, with_model=True, planning=False):
        self._settings = settings
        self._table = MappingTable.from_text(settings.table_text, origin=settings.table)
        if self._table.sha256 != settings.table_sha256:
            raise errors.TableError(
                f"Mapping table {settings.table} is not the one the batch started with: expected "
                f"SHA-256 {settings.table_sha256}, received {self._table.sha256}.")
        self._plans = {}
        self.add_plans(plans or {})
        self._model = None
        self._template = None
        if with_model and planning:
            self._template = self._load_model(target_model.load_template)
        elif with_model:
            self._model = self._load_model(target_model.load_model)
        self._staged = {}

    def add_plans(self, plans):
        """Converts the jobs of these layouts by their copy plans from now on.

        Args:
            plans: `{layout digest: CopyPlan text}`, read against this table.
        """
        self._plans.update({layout: copy_plan.CopyPlan.from_text(text, self._table)
                            for layout, text in plans.items()})

    def _load_model(self, load):
        """`load(factory)` (`target.load_model` or `load_template`), or the factory's text for
        a factory that sizes its model from the checkpoint: it builds one per job."""
        factory = target_model.load_factory(self._settings.model)
        return self._settings.model if target_model.takes_checkpoint(factory) else load(factory)

    def _model_to_convert_with(self):
        """The template when it is the model itself (it has its weights' values: a model Keras
        could not build without them), else the model built now."""
        template = self._template
        if isinstance(template, target_model.Template) and not template.initializers:
            return template.model
        return self._load_model(target_model.load_model)

    def plan_copy(self, job):
        """Plans `job`'s conversion as a copy plan for its whole layout; never raises.

        Returns:
            `{PLAN_KEY: CopyPlan text}`, or `{REASON_KEY: why not}`.
        """
        settings = self._settings
        try:
            model = self._model
            if model is None:
                if self._template is None:
                    self._template = self._load_model(target_model.load_template)
                model = self._template
            if isinstance(model, str):
                raise copy_plan.NotCopyOnly("the model factory sizes its model from each "
                                            "checkpoint")
            checkpoint = pipeline.open_checkpoint(job.source, settings.options)
            plan = copy_plan.make(checkpoint, self._table, model, options=settings.options,
                                  model_name=settings.model)
        except Exception as error:  # Planned on its own, each checkpoint fails with its own line.
            return {REASON_KEY: errors.first_line(error)}
        return {PLAN_KEY: plan.to_text()}

    def stage(self, job):
        """Copies ahead what `job`'s plan, still being made, will most likely copy; never raises.

        `convert` finishes the job by its plan when that plan matches what
        was copied, and otherwise drops the copies and converts it as usual.

        Returns:
            `{STAGED_KEY: True}`, or `{STAGED_KEY: False, REASON_KEY: why not}`.
        """
        staged, reason = copy_plan.stage(job.source, job.output, table=self._table,
                                         options=self._settings.options,
                                         hash_sources=self._settings.hash_sources)
        if staged is None:
            return {STAGED_KEY: False, REASON_KEY: reason}
        self._staged[job.relative] = staged
        return {STAGED_KEY: True}

    def drop_staged(self):
        """Removes every staged copy not finished yet (the batch is ending)."""
        for staged in self._staged.values():
            staged.abandon()
        self._staged.clear()

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
        # A checkpoint copied ahead adds the copying's seconds, spent before this call.
        result.seconds = round(result.seconds + time.monotonic() - started, 3)
        return result

    def _convert(self, job):
        settings = self._settings
        skipped = skipped_result(job, settings) if settings.check_current else None
        if skipped is not None:
            return skipped
        plan = self._plans.get(job.layout)
        staged = self._staged.pop(job.relative, None)
        if staged is not None and (plan is None or not staged.matches(plan)):
            staged.abandon()
            staged = None
        if staged is not None:
            report = staged.finish(plan, options=settings.options)
        elif plan is not None:
            report = copy_plan.execute(plan, job.source, job.output, options=settings.options,
                                       hash_sources=settings.hash_sources)
        else:
            # Opened first: a damaged checkpoint fails before a copy worker
            # imports TensorFlow and builds the model for it.
            checkpoint = pipeline.open_checkpoint(job.source, settings.options, read_ahead=True)
            if self._model is None:
                self._model = self._model_to_convert_with()
            # convert(overwrite=True) refuses to replace anything that is not a
            # converted output (no manifest.json), so a stray directory is safe.
            report = pipeline.convert(
                checkpoint, self._table, self._model, job.output, options=settings.options,
                overwrite=True, model_name=settings.model, hash_sources=settings.hash_sources,
                fill_model=False)
        kept, dropped, left_out = role_bytes(report.roles)
        # Copied ahead: its seconds so far are the copying's (`convert` adds the finishing).
        return ItemResult.for_job(
            job, Status.CONVERTED, kept_bytes=kept, dropped_bytes=dropped,
            left_out_bytes=left_out, written_weights=report.written_weights,
            warnings=report.warnings, copied_ahead=staged is not None,
            seconds=staged.seconds if staged is not None else 0.0)


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
                              with_model=with_model, planning=start.get(PLANNING_KEY, False))
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
        if STAGE_KEY in message:
            send(converter.stage(Job.from_json(message[STAGE_KEY])))
            continue
        send(converter.convert(Job.from_json(message)).to_json())
    converter.drop_staged()
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
