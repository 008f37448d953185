"""Runs a batch conversion as an Apache Beam pipeline (Dataflow, Flink, Spark, or the DirectRunner).

Needs the optional `beam` extra (`pip install 'tf1-migrate[beam]'`). The
pipeline does the same per-checkpoint conversion as the local runner: the
copy plans (`migrate.batch.copy_plan`) are made once, while the pipeline is
constructed, and shipped with the DoFn; each DoFn instance starts one
`migrate.batch.worker` process in `setup` and reuses it. That worker
converts the checkpoints a plan covers without importing TensorFlow, and
imports it and builds the model only for a checkpoint no plan covers.
Failed checkpoints, including one that kills that process, go to a
dead-letter output that becomes part of the batch report while the others go on.

Example:

    results = run(jobs, settings, output_dir="gs://bucket/converted",
                  pipeline_args=["--runner=DataflowRunner", "--project=my-project",
                                 "--region=us-central1", "--temp_location=gs://bucket/tmp"])
"""

import json
import uuid

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from apache_beam.options.pipeline_options import StandardOptions

from migrate import errors
from migrate import files
from migrate.batch import jobs as batch_jobs
from migrate.batch import pool as batch_pool

RESULTS_MARK = ".batch-results-"
# The runner used when the pipeline arguments name none. Beam's default, the
# DirectRunner, first tries its Prism runner (a binary it downloads) and, when
# that cannot start (offline), falls back to this one, leaving an empty
# `/tmp/beam-temp*` directory behind on every run. The FnApiRunner runs the
# pipeline in this process, honours the `--direct_*` options, and leaves nothing.
LOCAL_RUNNER = "FnApiRunner"


DEAD_LETTER = "dead_letter"
CONVERTED = "converted"


class ConvertCheckpoints(beam.DoFn):
    """Converts each job in a worker process started once per DoFn instance, in `setup`.

    Beam runs `setup` once per DoFn instance and reuses the instance across
    bundles, so the worker process (and, for checkpoints no copy plan
    covers, its TensorFlow import and its model) is paid for once per
    instance (one per SDK harness thread: cap those threads, see docs/batch.md). Results of
    checkpoints that failed go to the
    `DEAD_LETTER` output, the others to the main output; no checkpoint makes
    the pipeline fail, so Beam never retries a bundle over a bad input.

    Args:
        settings: `BatchSettings.to_json()`.
        verbose: let the worker's standard error through.
        plans: `{layout digest: CopyPlan text}` (`batch_pool.plan_copies`).
    """

    def __init__(self, settings, verbose=False, plans=None):
        super().__init__()
        self._settings = settings
        self._verbose = verbose
        self._plans = dict(plans or {})
        self._worker = None

    def setup(self):
        # A worker that cannot start (no model, no table) is reported per
        # checkpoint by `process`, not raised here, where Beam would retry it.
        self._worker = self._start_or_error()

    def process(self, job_document):
        job = batch_jobs.Job.from_json(job_document)
        if not isinstance(self._worker, batch_pool.WorkerProcess):
            # Only after a worker died on its checkpoint (or could not start).
            self._worker = self._start_or_error()
        if isinstance(self._worker, str):
            result = batch_jobs.ItemResult.for_job(job, batch_jobs.Status.FAILED,
                                                     self._worker)
            self._worker = None
        else:
            self._worker.submit(job)
            result, alive = self._worker.collect()
            if not alive:
                self._worker.stop()
                self._worker = None
        if result.status == batch_jobs.Status.FAILED.value:
            yield beam.pvalue.TaggedOutput(DEAD_LETTER, result.to_json())
        else:
            yield result.to_json()

    def teardown(self):
        if isinstance(self._worker, batch_pool.WorkerProcess):
            self._worker.stop()
        self._worker = None

    def _start_or_error(self):
        """Returns a ready `WorkerProcess`, or the reason it could not start."""
        worker = batch_pool.WorkerProcess(
            batch_jobs.BatchSettings.from_json(self._settings), verbose=self._verbose,
            plans=self._plans)
        try:
            worker.start()
            worker.wait_ready()
        except errors.MigrateError as error:
            worker.stop(kill=True)
            return f"the batch worker could not start: {errors.first_line(error)}"
        return worker


def add_conversion(pipeline, jobs, settings, results_path, *, verbose=False, plans=None):
    """Adds the batch conversion to a Beam pipeline: jobs in, one JSON file of results out.

    Converted and skipped checkpoints come out of the main output, failed ones
    out of the dead-letter output; both are gathered into the results file,
    which becomes the batch report.

    Args:
        pipeline: a `beam.Pipeline`.
        jobs: the `batch_jobs.Job`s.
        settings: a `batch_jobs.BatchSettings`.
        results_path: where `{"converted": [...], "dead_letter": [...]}` of
            `ItemResult` documents is written.
        verbose: let the workers' standard error through.
        plans: `{layout digest: CopyPlan text}` for the jobs whose `layout`
            names one (`batch_pool.plan_copies`).

    Returns:
        The final `PCollection`.
    """
    outputs = (pipeline
               | "Checkpoints" >> beam.Create([job.to_json() for job in jobs])
               # Spreads the checkpoints over the runner's workers.
               | "Spread" >> beam.Reshuffle()
               | "Convert" >> beam.ParDo(ConvertCheckpoints(settings.to_json(), verbose, plans))
               .with_outputs(DEAD_LETTER, main=CONVERTED))
    converted = outputs[CONVERTED] | "GatherConverted" >> beam.combiners.ToList()
    dead_letter = outputs[DEAD_LETTER] | "GatherDeadLetter" >> beam.combiners.ToList()
    return (pipeline
            | "Start" >> beam.Create([None])
            | "WriteResults" >> beam.Map(_write_results, results_path,
                                         beam.pvalue.AsSingleton(converted),
                                         beam.pvalue.AsSingleton(dead_letter)))


def run(jobs, settings, *, output_dir, pipeline_args=(), verbose=False, store=None):
    """Runs the conversion of `jobs` as a Beam pipeline and waits for it.

    Args:
        jobs: the `batch_jobs.Job`s.
        settings: a `batch_jobs.BatchSettings`.
        output_dir: the batch's output directory; the results pass through a
            hidden file there, so the runner's workers must be able to write it.
        pipeline_args: Beam's own arguments, e.g. `["--runner=FlinkRunner", ...]`;
            without `--runner`, the pipeline runs in this process (`LOCAL_RUNNER`).
        verbose: let the workers' standard error through.
        store: the output directory's `stored_plans.PlanStore` (a local
            one), whose plans are used instead of planning, or None.

    Returns:
        The `batch_jobs.ItemResult`s: the converted ones, then the dead letters.
    """
    results_path = files.join(output_dir, f"{RESULTS_MARK}{uuid.uuid4().hex[:8]}.json")
    # Planned here, once per source layout, in one worker process of this machine, for the
    # checkpoints whose outputs are not up to date (a rerun with nothing to do plans nothing).
    stale = [job for job in jobs if batch_jobs.skipped_result(job, settings) is None]
    plans, planned, ready = batch_pool.plan_copies(stale, settings, verbose=verbose,
                                                   store=store)
    for worker in ready:
        worker.stop()
    planned = {job.relative: job for job in planned}
    jobs = [planned.get(job.relative, job) for job in jobs]
    try:
        with beam.Pipeline(options=pipeline_options(pipeline_args)) as pipeline:
            add_conversion(pipeline, jobs, settings, results_path, verbose=verbose, plans=plans)
        documents = json.loads(files.read_bytes(results_path))
    finally:
        if files.exists(results_path):
            files.remove(results_path)
    return [batch_jobs.ItemResult.from_json(document)
            for document in documents[CONVERTED] + documents[DEAD_LETTER]]


def pipeline_options(pipeline_args=()):
    """Returns Beam's options for `pipeline_args`, with `LOCAL_RUNNER` when they name no runner.

    Args:
        pipeline_args: Beam's own arguments, e.g. `["--direct_num_workers=1"]`.

    Returns:
        A `PipelineOptions`.

    Example:

    >>> pipeline_options(["--direct_num_workers=1"]).view_as(StandardOptions).runner
    'FnApiRunner'
    >>> pipeline_options(["--runner=DataflowRunner"]).view_as(StandardOptions).runner
    'DataflowRunner'
    """
    options = PipelineOptions(list(pipeline_args))
    if options.view_as(StandardOptions).runner is None:
        options.view_as(StandardOptions).runner = LOCAL_RUNNER
    return options


def _write_results(_, results_path, converted, dead_letter):
    files.write_bytes(results_path, json.dumps(
        {CONVERTED: converted, DEAD_LETTER: dead_letter}).encode("utf-8"))
    return len(converted) + len(dead_letter)
