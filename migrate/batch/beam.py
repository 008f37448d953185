"""Runs a batch conversion as an Apache Beam pipeline (Dataflow, Flink, Spark, or the DirectRunner).

Needs the optional `beam` extra (`pip install 'tf1-migrate[beam]'`). The
pipeline does the same per-checkpoint conversion as the local runner: each
DoFn instance keeps one `migrate.batch_worker` process (TensorFlow imported
and the model built once), and a checkpoint that kills that process is
reported as failed while the others go on.

Example:

    results = run(jobs, settings, output_dir="gs://bucket/converted",
                  pipeline_args=["--runner=DataflowRunner", "--project=my-project",
                                 "--region=us-central1", "--temp_location=gs://bucket/tmp"])
"""

import json
import uuid

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from migrate import files
from migrate.batch import worker as batch_worker

RESULTS_MARK = ".batch-results-"


class ConvertCheckpoints(beam.DoFn):
    """Converts each job in a worker process that lives as long as this DoFn instance.

    Beam reuses a DoFn instance across bundles, so the worker process, its
    TensorFlow import and its model are paid for once per instance.

    Args:
        settings: `BatchSettings.to_json()`.
        verbose: let the worker's standard error through.
    """

    def __init__(self, settings, verbose=False):
        super().__init__()
        self._settings = settings
        self._verbose = verbose
        self._worker = None

    def setup(self):
        self._worker = self._start()

    def process(self, job):
        if self._worker is None:
            self._worker = self._start()
        self._worker.submit(batch_worker.Job.from_json(job))
        result, alive = self._worker.collect()
        if not alive:
            # The next element starts a fresh worker; this one died on its checkpoint.
            self._worker.stop()
            self._worker = None
        yield result.to_json()

    def teardown(self):
        if self._worker is not None:
            self._worker.stop()
            self._worker = None

    def _start(self):
        worker = batch_worker.WorkerProcess(
            batch_worker.BatchSettings.from_json(self._settings), verbose=self._verbose)
        worker.start()
        worker.wait_ready()
        return worker


def add_conversion(pipeline, jobs, settings, results_path, *, verbose=False):
    """Adds the batch conversion to a Beam pipeline: jobs in, one JSON file of results out.

    Args:
        pipeline: a `beam.Pipeline`.
        jobs: the `batch_worker.Job`s.
        settings: a `batch_worker.BatchSettings`.
        results_path: where the list of `ItemResult` documents is written.
        verbose: let the workers' standard error through.

    Returns:
        The final `PCollection`.
    """
    return (pipeline
            | "Checkpoints" >> beam.Create([job.to_json() for job in jobs])
            # Spreads the checkpoints over the runner's workers.
            | "Spread" >> beam.Reshuffle()
            | "Convert" >> beam.ParDo(ConvertCheckpoints(settings.to_json(), verbose))
            | "Gather" >> beam.combiners.ToList()
            | "WriteResults" >> beam.Map(_write_results, results_path))


def run(jobs, settings, *, output_dir, pipeline_args=(), verbose=False):
    """Runs the conversion of `jobs` as a Beam pipeline and waits for it.

    Args:
        jobs: the `batch_worker.Job`s.
        settings: a `batch_worker.BatchSettings`.
        output_dir: the batch's output directory; the results pass through a
            hidden file there, so the runner's workers must be able to write it.
        pipeline_args: Beam's own arguments, e.g. `["--runner=FlinkRunner", ...]`;
            none runs the DirectRunner in this process.
        verbose: let the workers' standard error through.

    Returns:
        The `batch_worker.ItemResult`s.
    """
    results_path = files.join(output_dir, f"{RESULTS_MARK}{uuid.uuid4().hex[:8]}.json")
    try:
        with beam.Pipeline(options=PipelineOptions(list(pipeline_args))) as pipeline:
            add_conversion(pipeline, jobs, settings, results_path, verbose=verbose)
        documents = json.loads(files.read_bytes(results_path))
    finally:
        if files.exists(results_path):
            files.gfile().remove(results_path)
    return [batch_worker.ItemResult.from_json(document) for document in documents]


def _write_results(documents, results_path):
    files.write_bytes(results_path, json.dumps(documents).encode("utf-8"))
    return len(documents)
