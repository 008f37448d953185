"""Measures conversion wall time, peak memory and throughput against two baselines.

    python scripts/benchmark.py [--workloads=vgg_16,bert_base,batch,batch_vgg_16,batch_dense,
                                              partitioned]
                                [--repeats=N] [--workdir=D] [--output=F]

Workloads (legacy checkpoints are built in the work directory, reused when
it already holds them):
  vgg_16     tf-slim VGG-16 with Momentum slots (about 1.1 GB on disk).
  bert_base  a BERT-base encoder with Adam slots (about 1.3 GB on disk).
  batch      50 step checkpoints of small_convnet: `python -m migrate batch`
             against 50 separate `python -m migrate convert` runs; one
             checkpoint's fixed cost inside its worker (kilobytes kept: the
             batch report's per-checkpoint seconds), and the rerun's seconds
             inside the library per up-to-date checkpoint.
  batch_vgg_16
             10 vgg_16-sized checkpoints (hard links to the vgg_16 one) and one
             damaged one (its `.index` cut short): `python -m migrate batch`,
             then its rerun (nothing changed: the 10 up to date, the damaged
             one failed before), the batch again with the copy plan the first
             run stored (its outputs removed: new checkpoints into the same
             output directory, no TensorFlow imported), and the batch with
             `--workers=2`, against
             this machine's plain file copy of the kept bytes (sequential read
             rate, write rate, and one copy's seconds).
  batch_dense
             all the steps of one run (`--latest_only=false`): 50 checkpoints
             (hard links to one) of a stack of dense layers keeping about 100 MB
             each (scripts/dense_stack.py; `--dense_checkpoints`,
             `--dense_megabytes`), `python -m migrate batch` into an empty
             output directory and again with the copy plan the first run
             stored (its outputs removed: new checkpoints into the same
             output directory), against the plain copy of their kept bytes.
  partitioned
             a 1.07 GB embedding saved by TF1 in 8 partitions
             (scripts/partitioned_embedding.py), converted with the `mod`
             table (`unpartition_mod(8)`) and the `div` one (a plain rule):
             peak memory against the floor plus one partition.

Every run is a whole separate process; wall time is measured around it, and
CPU time (user + system) and peak RSS come from `os.wait4` (what
`/usr/bin/time -v` reports), the waited-for worker processes included. For each
single-checkpoint workload three programs run, interleaved and in a rotating
order, after one untimed warm-up round:
  floor  import TensorFlow, build the Keras model, write its checkpoint: the
         least any converter must do.
  ours   `python -m migrate convert`.
  guide  the recipe of TensorFlow's guide "Migrating model checkpoints":
         `tf.train.load_checkpoint`, read every variable of the checkpoint,
         assign the mapped ones, `tf.train.Checkpoint.write`.
ours and guide also run on a cold page cache: before each such run every
source file is dropped from the page cache (`posix_fadvise(POSIX_FADV_DONTNEED)`
after an `fdatasync`; no root needed), so its bytes come from the disk, as on
a real disk or a network filesystem where reading only the kept bytes is the
saving. The plain copy of the kept bytes is timed both ways too.
The project's modules are compiled to bytecode first, as installing a package
compiles them. The tables report medians; a single checkpoint's targets are
medians of the ratios within each rotated round (runs of one round are back
to back, so their ratio holds while the machine's speed drifts), the batch
targets ratios of this run's medians.
"""

import compileall
import dataclasses
import functools
import json
import multiprocessing
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from absl import app
from absl import flags

WORKLOADS = ("vgg_16", "bert_base", "batch", "batch_vgg_16", "batch_dense", "partitioned")
FLOOR = "floor"
OURS = "ours"
GUIDE = "guide"
OURS_COLD = "ours, cold"
GUIDE_COLD = "guide, cold"
COLD_RUNS = (OURS_COLD, GUIDE_COLD)
OURS_DIV = "ours, div table"
WARM = "warm"
COLD = "cold"
BASELINES = (FLOOR, GUIDE)
BATCH = "batch"
SEPARATE = "separate"
RERUN = "rerun"
DECISIONS = "decisions"
PER_CHECKPOINT = "per_checkpoint"
TWO_WORKERS = "2 workers"
STORED_PLAN = "stored plan"
PAIRED_COPY = "paired copy"

_WORKLOADS = flags.DEFINE_list(
    "workloads", ",".join(WORKLOADS), f"Workloads to measure, any of {', '.join(WORKLOADS)}.")
_REPEATS = flags.DEFINE_integer("repeats", 3, "Timed repetitions of every run.", lower_bound=1)
_WORKDIR = flags.DEFINE_string(
    "workdir", None, "Directory for legacy checkpoints (kept and reused) and outputs; a "
    "temporary directory, removed at the end, when unset.")
_OUTPUT = flags.DEFINE_string("output", None, "Also write the markdown tables to this file.")
_BATCH_CHECKPOINTS = flags.DEFINE_integer(
    "batch_checkpoints", 50, "Step checkpoints in the batch workload.", lower_bound=2)
_COLD_READ_LIMIT = flags.DEFINE_integer(
    "cold_read_limit", 0, "Also limit the cold runs' reads from the source's disk to this many "
    "MB/s (a blkio cgroup; needs root), as a slower disk or a network filesystem would; "
    "0: the disk's own speed.", lower_bound=0)
_LARGE_BATCH_CHECKPOINTS = flags.DEFINE_integer(
    "large_batch_checkpoints", 10, "vgg_16-sized checkpoints in the batch_vgg_16 workload.",
    lower_bound=2)
_DENSE_CHECKPOINTS = flags.DEFINE_integer(
    "dense_checkpoints", 50, "Checkpoints in the batch_dense workload.", lower_bound=2)
_DENSE_MEGABYTES = flags.DEFINE_float(
    "dense_megabytes", 100.0, "Megabytes each batch_dense checkpoint keeps.", lower_bound=0.01)
# The baselines run as child processes of this same script.
_BASELINE = flags.DEFINE_enum("baseline", None, list(BASELINES), "Internal: run one baseline.")
_CHECKPOINT = flags.DEFINE_string("checkpoint", None, "Internal: the guide's legacy checkpoint.")
_TABLE = flags.DEFINE_string("table", None, "Internal: the guide's mapping table.")
_MODEL = flags.DEFINE_string("model", None, "Internal: the Keras model factory, module:callable.")
_PREFIX = flags.DEFINE_string("prefix", None, "Internal: where a baseline writes its checkpoint.")

flags.register_validator(
    "workloads", lambda names: set(names) <= set(WORKLOADS),
    f"--workloads takes names from {', '.join(WORKLOADS)}.")

_QUIET_ENVIRONMENT = {"TF_CPP_MIN_LOG_LEVEL": "3"}
# Single-checkpoint targets, as ratios of medians.
WALL_VS_FLOOR = 1.10
CPU_VS_FLOOR = 1.15
RSS_VS_FLOOR = 1.10
# Batch targets: per-checkpoint wall against a plain copy of its kept bytes,
# the whole batch's wall per checkpoint against the same, and a rerun with
# nothing to do (one checkpoint failed before, unchanged) against the first run.
PER_CHECKPOINT_VS_COPY = 1.3
WHOLE_BATCH_VS_COPY = 1.2
# All the steps of one run, mid-size checkpoints: the whole batch against the plain copies.
MANY_CHECKPOINTS_VS_COPY = 1.3
RERUN_VS_FIRST = 0.03
GUIDE_VS_OURS = 1.3
# On a cold page cache the guide reads the optimizer slots from disk too.
COLD_GUIDE_VS_OURS = 1.5
SEPARATE_VS_BATCH = 5.0
# A small checkpoint's fixed cost in its worker (copy plans: no TensorFlow),
# and a rerun's cost per up-to-date checkpoint, in seconds.
PER_SMALL_CHECKPOINT = 0.010
PER_UP_TO_DATE = 0.001
SCRIPTS = os.path.dirname(os.path.abspath(__file__))
PACKAGES = ("migrate", "legacy_graphs")


@dataclasses.dataclass(frozen=True)
class Workload:
    """A legacy checkpoint to build and the conversion to measure on it."""

    name: str
    builder: str
    table: str
    model: str
    steps: int | None = None
    build_flags: tuple = ()


def compile_bytecode():
    """Compiles the project's modules to bytecode, as installing a package does.

    An editable install has none until an import writes it, and with
    PYTHONDONTWRITEBYTECODE set (as on some machines, this one included) none
    is ever written: every process would compile a hundred modules' source,
    0.3 s here, which no user's installed toolkit pays.
    """
    root = os.path.dirname(SCRIPTS)
    for package in PACKAGES:
        if not compileall.compile_dir(os.path.join(root, package), quiet=1):
            raise RuntimeError(f"Cannot compile {package}'s modules to bytecode.")


def _zoo_table(name):
    # Not `zoo.get(name).table_path`: importing the entry would import Keras
    # into this parent process.
    import migrate.zoo
    return migrate.zoo.table_path(name)


def _workloads():
    return {
        "vgg_16": Workload("vgg_16", "vgg_16", _zoo_table("vgg_16"),
                           "migrate.zoo.vgg_16:build_model"),
        "bert_base": Workload("bert_base", "bert_encoder", _zoo_table("bert_encoder"),
                              "migrate.zoo.bert_encoder:build_base_model", steps=0,
                              build_flags=("--config=base",)),
        "batch": Workload("batch", "small_convnet", _zoo_table("small_convnet"),
                          "migrate.zoo.small_convnet:build_model"),
        "batch_vgg_16": Workload("batch_vgg_16", "vgg_16", _zoo_table("vgg_16"),
                                 "migrate.zoo.vgg_16:build_model"),
        # Built by scripts/dense_stack.py, which also writes its table; the model's width
        # travels in the environment (`batch_dense_environment`).
        "batch_dense": Workload("batch_dense", "dense_stack", "", "dense_stack:build_model"),
        # Built by scripts/partitioned_embedding.py, which also writes its tables.
        "partitioned": Workload("partitioned", "partitioned_embedding", "",
                                "partitioned_embedding:build_model"),
    }


@dataclasses.dataclass
class Measurement:
    """One whole process: wall seconds, CPU seconds (user + system) and peak resident bytes."""

    seconds: float
    peak_bytes: int
    cpu_seconds: float = 0.0


def evict(paths):
    """Drops the files' pages from the page cache, so that the next read comes from the disk.

    Written pages are flushed first: only clean pages can be dropped.
    """
    for path in paths:
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fdatasync(descriptor)
            os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(descriptor)


class ReadLimit:
    """A blkio cgroup that limits reads from one disk to a rate; processes are moved into it.

    cgroup v1's `blkio.throttle.read_bps_device` (or v2's `io.max`) throttles
    the reads a process issues to the block device, page cache misses and
    readahead included; writes and cached reads are not limited.

    Raises:
        RuntimeError: no writable blkio (v1) or io (v2) controller here.
    """

    _V1 = "/sys/fs/cgroup/blkio"
    _V2 = "/sys/fs/cgroup/unified"
    NAME = "tf1-migrate-benchmark"

    def __init__(self, path, bytes_per_second):
        device = os.stat(path).st_dev
        self.device = f"{os.major(device)}:{os.minor(device)}"
        self.bytes_per_second = bytes_per_second
        try:
            if os.path.isdir(self._V1):
                self.group = os.path.join(self._V1, self.NAME)
                os.makedirs(self.group, exist_ok=True)
                self._write("blkio.throttle.read_bps_device",
                            f"{self.device} {bytes_per_second}")
            else:
                self.group = os.path.join(self._V2, self.NAME)
                os.makedirs(self.group, exist_ok=True)
                self._write("io.max", f"{self.device} rbps={bytes_per_second}")
        except OSError as error:
            raise RuntimeError(f"Cannot limit the read rate here ({error}): --cold_read_limit "
                               f"needs root and a blkio (cgroup v1) or io (v2) controller.") \
                from None
        self._root_procs = os.path.join(os.path.dirname(self.group), "cgroup.procs")

    def _write(self, name, text):
        with open(os.path.join(self.group, name), "w", encoding="ascii") as file:
            file.write(text)

    def enter(self, pid=None):
        """Moves a process (this one by default) into the limited group."""
        self._write("cgroup.procs", str(pid or os.getpid()))

    def leave(self):
        """Moves this process back to the root group."""
        with open(self._root_procs, "w", encoding="ascii") as file:
            file.write(str(os.getpid()))


def source_files(prefix):
    """Returns the files of a checkpoint prefix (`.index`, data shards, `.meta`)."""
    directory, base = os.path.split(prefix)
    return [os.path.join(directory, name) for name in sorted(os.listdir(directory))
            if name.startswith(base + ".") and not name.endswith(".tempstate")]


def settle():
    """Writes every dirty page to disk (`sync`) before a timed run.

    A run that writes gigabytes leaves them dirty in the page cache, and
    the kernel throttles whoever writes next while it flushes them: without
    this, a run would pay for the writes of the run before it.
    """
    os.sync()


def measure(command, *, cwd=None, cold=(), exit_codes=(0,), read_limit=None):
    """Runs `command` as a process; returns its `Measurement`.

    Args:
        command: the command.
        cwd: its working directory.
        cold: files evicted from the page cache just before it starts.
        exit_codes: the exit codes that count as success.
        read_limit: a `ReadLimit` the process runs in, or None.

    Raises:
        RuntimeError: the process failed; the message holds its last output.
    """
    environment = {key: value for key, value in os.environ.items()
                   if key != "TF_USE_LEGACY_KERAS"}
    environment.update(_QUIET_ENVIRONMENT)
    # The partitioned workload's model factory lives beside this script.
    environment["PYTHONPATH"] = os.pathsep.join(
        filter(None, [SCRIPTS, environment.get("PYTHONPATH")]))
    evict(cold)
    settle()
    with tempfile.TemporaryFile() as log:
        started = time.monotonic()
        process = subprocess.Popen(command, cwd=cwd, env=environment, stdout=log, stderr=log,
                                   preexec_fn=read_limit and read_limit.enter)
        _, status, usage = os.wait4(process.pid, 0)
        seconds = time.monotonic() - started
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode not in exit_codes:
            log.seek(0)
            tail = log.read().decode(errors="replace")[-3000:]
            raise RuntimeError(f"{' '.join(command)} exited with {process.returncode}:\n{tail}")
    # Linux reports ru_maxrss in kilobytes; it covers the process and its
    # waited-for children (the batch's worker process).
    return Measurement(seconds, usage.ru_maxrss * 1024, usage.ru_utime + usage.ru_stime)


def _python(*arguments):
    return [sys.executable, *arguments]


def _script(*arguments):
    return _python(os.path.abspath(__file__), *arguments)


def _legacy_checkpoint(workload, directory):
    """Builds the workload's legacy checkpoint in `directory`, or reuses the one there."""
    import legacy_graphs

    existing = _newest_prefix(directory)
    if existing is not None:
        return existing
    print(f"building {workload.builder} in {directory} ...", flush=True)
    return legacy_graphs.build_in_subprocess(workload.builder, directory, steps=workload.steps,
                                             extra_flags=workload.build_flags)


def _partitioned_checkpoint(directory):
    """Builds the partitioned embedding's checkpoint and tables in `directory`, or reuses them."""
    existing = _newest_prefix(directory)
    if existing is not None:
        return existing
    print(f"building the partitioned embedding in {directory} ...", flush=True)
    completed = subprocess.run(
        _python(os.path.join(SCRIPTS, "partitioned_embedding.py"), directory),
        capture_output=True, text=True, check=True, env={**os.environ, **_QUIET_ENVIRONMENT})
    return completed.stdout.strip().splitlines()[-1]


def _newest_prefix(directory):
    if not os.path.isdir(directory):
        return None
    prefixes = [os.path.join(directory, name[:-len(".index")]) for name in os.listdir(directory)
                if name.endswith(".index")]
    return max(prefixes, key=lambda prefix: os.path.getmtime(prefix + ".index"), default=None)


def _source_bytes(prefix):
    directory, base = os.path.split(prefix)
    return sum(os.path.getsize(os.path.join(directory, name)) for name in os.listdir(directory)
               if name.startswith(base + ".") and not name.endswith(".tempstate"))


def _roles(prefix):
    """Returns `inspect`'s role totals, to show what the checkpoint holds besides weights."""

    completed = subprocess.run(_python("-m", "migrate", "inspect", f"--checkpoint={prefix}",
                                       "--json"), capture_output=True, text=True, check=True,
                               env={**os.environ, **_QUIET_ENVIRONMENT})
    return json.loads(completed.stdout)["roles"]


def _rotations(names, repeats):
    """Yields `(timed, name)`: one untimed warm-up round, then `repeats` rotated rounds."""
    for name in names:
        yield False, name
    for repetition in range(repeats):
        shift = repetition % len(names)
        for name in names[shift:] + names[:shift]:
            yield True, name


def measure_single(workload, prefix, workdir, repeats, read_limit=None):
    """Measures floor, ours and guide (warm and cold) on one checkpoint; returns `{run: [...]}`.

    The cold runs run under `read_limit` (a `ReadLimit`) when given.
    """
    output = os.path.join(workdir, f"out-{workload.name}")
    commands = {
        FLOOR: _script(f"--baseline={FLOOR}", f"--model={workload.model}",
                       f"--prefix={os.path.join(output, 'ckpt')}"),
        OURS: _python("-m", "migrate", "convert", f"--checkpoint={prefix}",
                      f"--table={workload.table}", f"--model={workload.model}",
                      f"--output={output}"),
        GUIDE: _script(f"--baseline={GUIDE}", f"--checkpoint={prefix}",
                       f"--table={workload.table}", f"--model={workload.model}",
                       f"--prefix={os.path.join(output, 'ckpt')}"),
    }
    commands[OURS_COLD], commands[GUIDE_COLD] = commands[OURS], commands[GUIDE]
    return _measure_rotated(workload, commands, output, repeats,
                            cold={name: source_files(prefix) for name in COLD_RUNS},
                            read_limit=read_limit)


def _measure_rotated(workload, commands, output, repeats, *, cold=None, read_limit=None):
    """Runs `commands` in rotation (see `_rotations`); returns `{run: [Measurement]}`.

    The runs in `cold` start on a cold page cache (and under `read_limit`).
    """
    cold = cold or {}
    results = {name: [] for name in commands}
    for timed, name in _rotations(list(commands), repeats):
        shutil.rmtree(output, ignore_errors=True)
        result = measure(commands[name], cold=cold.get(name, ()),
                         read_limit=read_limit if name in cold else None)
        shutil.rmtree(output, ignore_errors=True)
        print(f"  {workload.name} {name:<11} {'' if timed else '(warm-up) '}"
              f"{result.seconds:6.2f} s {result.peak_bytes / 1e6:7.0f} MB", flush=True)
        if timed:
            results[name].append(result)
    return results


def _batch_checkpoints(prefix, directory, count):
    """Writes `count` step checkpoints model.ckpt-1..count, copies of one small checkpoint.

    The conversion's cost does not depend on the values, and one training run
    per step would take minutes to build.
    """
    if _newest_prefix(directory) is not None:
        return directory
    os.makedirs(directory)
    source_directory, base = os.path.split(prefix)
    names = [name for name in os.listdir(source_directory) if name.startswith(base + ".")]
    for step in range(1, count + 1):
        for name in names:
            shutil.copyfile(os.path.join(source_directory, name),
                            os.path.join(directory, f"model.ckpt-{step}{name[len(base):]}"))
    with open(os.path.join(directory, "checkpoint"), "w", encoding="utf-8") as state:
        state.write(f'model_checkpoint_path: "model.ckpt-{count}"\n')
        for step in range(1, count + 1):
            state.write(f'all_model_checkpoint_paths: "model.ckpt-{step}"\n')
    return directory


def measure_batch(workload, directory, workdir, count, repeats):
    """Measures one `batch` run and `count` separate `convert` runs; returns `{run: [...]}`."""
    output = os.path.join(workdir, "out-batch")
    results = {BATCH: [], SEPARATE: [], PER_CHECKPOINT: [], DECISIONS: []}
    batch_command = _python("-m", "migrate", "batch", f"--input_dir={directory}",
                            f"--output_dir={output}", f"--table={workload.table}",
                            f"--model={workload.model}")
    for repetition in range(repeats + 1):
        shutil.rmtree(output, ignore_errors=True)
        result = measure(batch_command)
        print(f"  batch  {'(warm-up) ' if not repetition else ''}{result.seconds:6.2f} s "
              f"{result.peak_bytes / 1e6:7.0f} MB", flush=True)
        if repetition:
            results[BATCH].append(result)
            # Each checkpoint's own seconds in its worker: with kilobytes kept
            # each, the fixed cost of one checkpoint (read its .index and .meta,
            # copy, write the bundle, hash, manifest, rename).
            results[PER_CHECKPOINT].extend(item["seconds"] for item in _report_items(output)
                                           if item["status"] == "converted")
            # The rerun's own time inside the library (scan, resume decisions, report).
            measure(batch_command)
            with open(os.path.join(output, "batch_report.json"), encoding="utf-8") as report:
                results[DECISIONS].append(json.load(report)["seconds"])
    shutil.rmtree(output, ignore_errors=True)
    # The separate runs are themselves `count` repetitions of one conversion;
    # their sum is the figure the batch is compared with.
    for step in range(1, count + 1):
        result = measure(_python(
            "-m", "migrate", "convert", f"--checkpoint={directory}/model.ckpt-{step}",
            f"--table={workload.table}", f"--model={workload.model}",
            f"--output={output}/model.ckpt-{step}"))
        results[SEPARATE].append(result)
    shutil.rmtree(output, ignore_errors=True)
    total = sum(result.seconds for result in results[SEPARATE])
    print(f"  {count} separate converts {total:6.1f} s", flush=True)
    return results


def _report_items(output):
    with open(os.path.join(output, "batch_report.json"), encoding="utf-8") as report:
        return json.load(report)["items"]


def _linked_checkpoints(prefix, directory, count, *, damaged=True):
    """Makes `count` checkpoints model.ckpt-1..count in `directory`: hard links to one checkpoint.

    A batch's cost per checkpoint does not depend on the values, and links
    cost no disk; the outputs are real files. With `damaged`, one more
    checkpoint whose `.index` is cut short.
    """
    if _newest_prefix(directory) is not None:
        return directory
    os.makedirs(directory)
    source_directory, base = os.path.split(prefix)
    names = [name for name in os.listdir(source_directory) if name.startswith(base + ".")
             and not name.endswith(".tempstate")]
    for step in range(1, count + 1):
        for name in names:
            os.link(os.path.join(source_directory, name),
                    os.path.join(directory, f"model.ckpt-{step}{name[len(base):]}"))
    if not damaged:
        return directory
    # One damaged checkpoint among them, after the others: its `.index` cut
    # short (a copy; the others' stay links), the rest links.
    damaged_base = f"model.ckpt-{count + 1}"
    for name in names:
        target = os.path.join(directory, damaged_base + name[len(base):])
        if name.endswith(".index"):
            with open(os.path.join(source_directory, name), "rb") as index:
                content = index.read()
            with open(target, "wb") as index:
                index.write(content[:40])
        else:
            os.link(os.path.join(source_directory, name), target)
    return directory


def _kept_blocks(data, kept_bytes):
    """Yields the first `kept_bytes` of the file `data`, read in 8 MB blocks, in order."""
    with open(data, "rb") as source:
        remaining = kept_bytes
        while remaining > 0:
            chunk = source.read(min(8 << 20, remaining))
            if not chunk:
                return
            yield chunk
            remaining -= len(chunk)


def measure_copy(prefix, kept_bytes, workdir, repeats, *, cold=False, read_limit=None):
    """Times this machine's plain copy of `kept_bytes` of the checkpoint's data.

    Reads the first `kept_bytes` of the data file sequentially in 8 MB
    blocks (the read rate), writes them to a new file (the write rate),
    and removes it; with `cold`, the data file is evicted from the page
    cache before each run, and the copy runs under `read_limit` (a
    `ReadLimit`) when given. Returns `[{"read_seconds", "write_seconds", "seconds"}]`.

    It runs in a process of its own: it holds the kept bytes between the
    reading and the writing, and Linux carries a process's peak memory into
    every process it starts after (the high-water mark survives `exec`), so
    here every later measurement's peak would have included them.
    """
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(_copy_runs, (prefix, kept_bytes, workdir, repeats, cold, read_limit))


def _copy_runs(prefix, kept_bytes, workdir, repeats, cold, read_limit):
    data = prefix + ".data-00000-of-00001"
    target = os.path.join(workdir, "plain-copy")
    runs = []
    for repetition in range(repeats + 1):
        if cold:
            evict([data])
        limited = cold and read_limit is not None
        settle()
        if limited:
            read_limit.enter()
        started = time.monotonic()
        chunks = list(_kept_blocks(data, kept_bytes))
        read_done = time.monotonic()
        if limited:
            read_limit.leave()
        with open(target, "wb") as output:
            for chunk in chunks:
                output.write(chunk)
        written = time.monotonic()
        os.remove(target)
        del chunks
        run = {"read_seconds": read_done - started, "write_seconds": written - read_done,
               "seconds": written - started}
        print(f"  plain copy of {kept_bytes / 1e6:.0f} MB {COLD if cold else WARM} "
              f"{'(warm-up) ' if not repetition else ''}"
              f"{run['seconds']:6.2f} s", flush=True)
        if repetition:
            runs.append(run)
    return runs


def plain_batch_copy(prefix, kept_bytes, count, workdir):
    """Times one plain copy of a batch's kept bytes: `count` checkpoints, one file each.

    What a batch writes, done as plainly as it can be: for each checkpoint,
    the first `kept_bytes` of its data file are copied in 8 MB blocks (read
    one, write it) into a file of their own, one after another, the files
    kept until all are written (a batch's outputs stay too; writing
    gigabytes runs at the disk's sustained rate, which a single checkpoint's
    copy, all in the page cache, does not reach). Returns its seconds.
    """
    data = prefix + ".data-00000-of-00001"
    target = os.path.join(workdir, "plain-batch-copy")
    shutil.rmtree(target, ignore_errors=True)
    os.makedirs(target)
    settle()
    started = time.monotonic()
    for index in range(count):
        with open(os.path.join(target, f"copy-{index}"), "wb") as output:
            for chunk in _kept_blocks(data, kept_bytes):
                output.write(chunk)
    seconds = time.monotonic() - started
    shutil.rmtree(target)
    print(f"  plain copy of {count} x {kept_bytes / 1e6:.0f} MB {seconds:6.2f} s", flush=True)
    return seconds


def measure_large_batch(workload, directory, workdir, repeats, copy):
    """Measures `batch` over the linked checkpoints and its rerun; returns `{run: [...]}`.

    `copy()` times the plain copy of the batch's kept bytes; it runs just
    before each batch run, whose ratio to it is taken within that pair
    (`results[PAIRED_COPY][run]`): this machine's write rate drifts by
    several times between minutes, and a pair sees the same.
    """
    output = os.path.join(workdir, "out-batch-large")
    command = _python("-m", "migrate", "batch", f"--input_dir={directory}",
                      f"--output_dir={output}", f"--table={workload.table}",
                      f"--model={workload.model}")
    results = {BATCH: [], RERUN: [], DECISIONS: [], PER_CHECKPOINT: [], TWO_WORKERS: [],
               STORED_PLAN: [], PAIRED_COPY: {BATCH: [], STORED_PLAN: [], TWO_WORKERS: []}}
    copy()  # Warm-up: the source's pages, the first of many large writes.
    for _ in range(repeats):
        shutil.rmtree(output, ignore_errors=True)
        for run in (BATCH, RERUN, STORED_PLAN):
            if run == STORED_PLAN:
                # New checkpoints into the same output directory: every one
                # converted again, by the copy plan the first run stored.
                _remove_outputs(output)
                with open(os.path.join(output, "batch_report.json"), encoding="utf-8") as report:
                    results[DECISIONS].append(json.load(report)["seconds"])
            if run in results[PAIRED_COPY]:
                results[PAIRED_COPY][run].append(copy())
            # Exit code 1: the damaged checkpoint failed (and failed before).
            result = measure(command, exit_codes=(1,))
            print(f"  {workload.name} {run:<6} {result.seconds:6.2f} s "
                  f"{result.peak_bytes / 1e6:7.0f} MB", flush=True)
            results[run].append(result)
            if run == BATCH:
                # Each checkpoint's own seconds in the worker: the batch's
                # cost per checkpoint once TensorFlow is imported and the
                # model built, which the whole run spreads over all of them.
                with open(os.path.join(output, "batch_report.json"), encoding="utf-8") as report:
                    results[PER_CHECKPOINT].extend(
                        item["seconds"] for item in json.load(report)["items"]
                        if item["status"] == "converted")
            # The rerun report's own time (read before the stored-plan run
            # replaces it): the library call alone, without the process's
            # start-up and imports (what the rerun spends deciding).
    # Both cores: two workers, each with its own TensorFlow and model.
    for _ in range(repeats):
        shutil.rmtree(output, ignore_errors=True)
        results[PAIRED_COPY][TWO_WORKERS].append(copy())
        result = measure([*command, "--workers=2"], exit_codes=(1,))
        print(f"  {workload.name} {TWO_WORKERS} {result.seconds:6.2f} s "
              f"{result.peak_bytes / 1e6:7.0f} MB", flush=True)
        results[TWO_WORKERS].append(result)
    shutil.rmtree(output, ignore_errors=True)
    return results


def _remove_outputs(output):
    """Removes a batch's converted outputs, keeping its stored plans and remembered failures."""
    kept = {"batch_plans", "batch_failures.json", "batch_report.json"}
    for name in os.listdir(output):
        if name not in kept:
            shutil.rmtree(os.path.join(output, name))


def _dense_checkpoint(directory, megabytes):
    """Builds scripts/dense_stack.py's checkpoint and table in `directory`, or reuses them."""
    existing = _newest_prefix(directory)
    if existing is not None:
        return existing
    print(f"building dense_stack ({megabytes:g} MB kept) in {directory} ...", flush=True)
    completed = subprocess.run(
        _python(os.path.join(SCRIPTS, "dense_stack.py"), directory, str(megabytes)),
        capture_output=True, text=True, check=True, env={**os.environ, **_QUIET_ENVIRONMENT})
    return completed.stdout.strip().splitlines()[-1]


def measure_dense_batch(workload, directory, table, workdir, repeats, copy):
    """Measures `batch` over every step checkpoint: into an empty output directory, and with the
    copy plan the first run stored; returns `{run: [Measurement]}`, and under `PAIRED_COPY` the
    plain copy (`copy()`) timed just before each run, as `measure_large_batch` does."""
    output = os.path.join(workdir, "out-batch-dense")
    command = _python("-m", "migrate", "batch", f"--input_dir={directory}",
                      f"--output_dir={output}", f"--table={table}", f"--model={workload.model}",
                      "--latest_only=false")
    results = {BATCH: [], STORED_PLAN: [], PAIRED_COPY: {BATCH: [], STORED_PLAN: []}}
    copy()  # Warm-up.
    for _ in range(repeats):
        shutil.rmtree(output, ignore_errors=True)
        for run in (BATCH, STORED_PLAN):
            if run == STORED_PLAN:
                _remove_outputs(output)
            results[PAIRED_COPY][run].append(copy())
            result = measure(command)
            print(f"  {workload.name} {run:<11} {result.seconds:6.2f} s "
                  f"{result.peak_bytes / 1e6:7.0f} MB", flush=True)
            results[run].append(result)
    shutil.rmtree(output, ignore_errors=True)
    return results


def _ratio_to_paired_copy(results, run):
    """The median, over rounds, of a run's wall over the plain copy timed just before it."""
    return statistics.median(result.seconds / copy for result, copy in
                             zip(results[run], results[PAIRED_COPY][run]))


def _paired_copies(results):
    return [copy for copies in results[PAIRED_COPY].values() for copy in copies]


def dense_batch_rows(prefix, results, count, kept_bytes):
    """Returns `(figure rows, target rows)` for the batch of mid-size step checkpoints."""
    source = _source_bytes(prefix)
    copies = _paired_copies(results)
    copy_seconds = statistics.median(copies)
    label = (f"batch of {count} dense_stack step checkpoints (hard links; {source / 1e6:.0f} MB "
             f"each, {kept_bytes / 1e6:.0f} MB kept), `--latest_only=false`")
    names = {BATCH: "`python -m migrate batch` (empty output directory: plans first)",
             STORED_PLAN: "the same with the stored copy plan (outputs removed; no TensorFlow)"}
    figures, targets = [], []
    for run in (BATCH, STORED_PLAN):
        seconds = _median_seconds(results[run])
        figures.append(
            f"| {label if run == BATCH else ''} | {names[run]} | {seconds:.2f} "
            f"({_range([result.seconds for result in results[run]])}) | "
            f"{_median_cpu(results[run]):.2f} | {_median_peak(results[run]) / 1e6:.0f} | "
            f"{_throughput(count * source, seconds)} |")
        ratio = _ratio_to_paired_copy(results, run)
        targets.append(
            f"| batch_dense ({run}): whole run's wall / plain copy of the {count} checkpoints' "
            f"kept bytes (timed just before it) | {ratio:.2f}x | <= {MANY_CHECKPOINTS_VS_COPY}x | "
            f"{_verdict(ratio <= MANY_CHECKPOINTS_VS_COPY)} |")
    figures.append(
        f"| | plain copy of the {count} checkpoints' kept bytes, a file each (before each "
        f"run) | {copy_seconds:.2f} ({_range(copies)}) | — | — | "
        f"{_throughput(count * kept_bytes, copy_seconds)} |")
    return figures, targets


def large_batch_rows(prefix, results, copies, count, kept_bytes):
    """Returns `(figure rows, target rows)` for the vgg_16-sized batch, its rerun and the copies.

    `copies`: `measure_copy`'s runs, one checkpoint's kept bytes alone; the
    plain copies of all `count` are `results[PAIRED_COPY]`.
    """
    batch_copies = _paired_copies(results)
    source = _source_bytes(prefix)
    batch_seconds = _median_seconds(results[BATCH])
    rerun_seconds = _median_seconds(results[RERUN])
    copy_seconds = statistics.median(run["seconds"] for run in copies)
    batch_copy_seconds = statistics.median(batch_copies)
    read_rate = kept_bytes / statistics.median(run["read_seconds"] for run in copies)
    write_rate = kept_bytes / statistics.median(run["write_seconds"] for run in copies)
    label = (f"batch of {count} vgg_16 checkpoints (hard links; {source / 1e9:.2f} GB each, "
             f"{kept_bytes / 1e6:.0f} MB kept) and one damaged")
    figures = [
        f"| {label} | `python -m migrate batch` | {batch_seconds:.2f} "
        f"({_range([result.seconds for result in results[BATCH]])}) | "
        f"{_median_cpu(results[BATCH]):.2f} | {_median_peak(results[BATCH]) / 1e6:.0f} | "
        f"{_throughput(count * source, batch_seconds)} |",
        f"| | rerun (every output up to date, the damaged one failed before, unchanged) | "
        f"{rerun_seconds:.2f} "
        f"({_range([result.seconds for result in results[RERUN]])}) | "
        f"{_median_cpu(results[RERUN]):.2f} | {_median_peak(results[RERUN]) / 1e6:.0f} | — |",
        f"| | rerun inside `convert_batch` (its report's seconds: scan, {count} resume "
        f"decisions, report; no start-up or imports) | "
        f"{statistics.median(results[DECISIONS]):.2f} | — | — | — |",
        f"| | with the stored copy plan (the outputs removed: new checkpoints into the same "
        f"output directory; no TensorFlow imported) | "
        f"{_median_seconds(results[STORED_PLAN]):.2f} "
        f"({_range([result.seconds for result in results[STORED_PLAN]])}) | "
        f"{_median_cpu(results[STORED_PLAN]):.2f} | "
        f"{_median_peak(results[STORED_PLAN]) / 1e6:.0f} | "
        f"{_throughput(count * source, _median_seconds(results[STORED_PLAN]))} |",
        f"| | `--workers=2` (both cores) | {_median_seconds(results[TWO_WORKERS]):.2f} "
        f"({_range([result.seconds for result in results[TWO_WORKERS]])}) | "
        f"{_median_cpu(results[TWO_WORKERS]):.2f} | "
        f"{_median_peak(results[TWO_WORKERS]) / 1e6:.0f} | "
        f"{_throughput(count * source, _median_seconds(results[TWO_WORKERS]))} |",
        f"| | one checkpoint inside the worker (median of the reports' per-checkpoint "
        f"seconds: read, assign, write, hash, manifest, rename) | "
        f"{statistics.median(results[PER_CHECKPOINT]):.2f} "
        f"({_range(results[PER_CHECKPOINT])}) | — | — | "
        f"{_throughput(source, statistics.median(results[PER_CHECKPOINT]))} |",
        f"| | plain copy of one checkpoint's kept bytes (read {read_rate / 1e9:.2f} GB/s, "
        f"write {write_rate / 1e9:.2f} GB/s) | {copy_seconds:.2f} "
        f"({_range([run['seconds'] for run in copies])}) | — | — | "
        f"{_throughput(kept_bytes, copy_seconds)} |",
        f"| | plain copy of the {count} checkpoints' kept bytes, a file each (before each "
        f"run) | {batch_copy_seconds:.2f} ({_range(batch_copies)}) | — | — | "
        f"{_throughput(count * kept_bytes, batch_copy_seconds)} |",
    ]
    # Against the copy of all of them, timed just before each run: ten
    # checkpoints' writes run at the disk's sustained rate, which one
    # checkpoint's copy alone does not reach.
    per_checkpoint = statistics.median(results[PER_CHECKPOINT]) / (batch_copy_seconds / count)
    whole_run = _ratio_to_paired_copy(results, BATCH)
    stored = _ratio_to_paired_copy(results, STORED_PLAN)
    two_workers = _ratio_to_paired_copy(results, TWO_WORKERS)
    rerun = rerun_seconds / batch_seconds
    targets = [
        f"| batch_vgg_16: wall per checkpoint in the worker / plain copy of the {count} "
        f"checkpoints' kept bytes / {count} | "
        f"{per_checkpoint:.2f}x | <= {PER_CHECKPOINT_VS_COPY}x | "
        f"{_verdict(per_checkpoint <= PER_CHECKPOINT_VS_COPY)} |",
        f"| batch_vgg_16: whole run's wall / plain copy of the {count} checkpoints' kept bytes "
        f"(timed just before it; start-up, TensorFlow import and model build, spread over "
        f"{count} checkpoints) | "
        f"{whole_run:.2f}x | "
        f"<= {WHOLE_BATCH_VS_COPY}x | {_verdict(whole_run <= WHOLE_BATCH_VS_COPY)} |",
        f"| batch_vgg_16: the same with the copy plan the first run stored (new checkpoints "
        f"into the same output directory) | {stored:.2f}x | <= {WHOLE_BATCH_VS_COPY}x | "
        f"{_verdict(stored <= WHOLE_BATCH_VS_COPY)} |",
        f"| batch_vgg_16: the same with `--workers=2` | {two_workers:.2f}x | "
        f"<= {WHOLE_BATCH_VS_COPY}x | {_verdict(two_workers <= WHOLE_BATCH_VS_COPY)} |",
        f"| batch_vgg_16: rerun / first run (one deterministic failure among them) | "
        f"{100 * rerun:.1f}% | <= {100 * RERUN_VS_FIRST:.0f}% | "
        f"{_verdict(rerun <= RERUN_VS_FIRST)} |",
    ]
    return figures, targets


def _median_seconds(results):
    return statistics.median(result.seconds for result in results)


def _median_cpu(results):
    return statistics.median(result.cpu_seconds for result in results)


def _median_peak(results):
    return statistics.median(result.peak_bytes for result in results)


def _paired_ratio(numerators, denominators, field):
    """The median over the rotated rounds of each round's ratio of `field`.

    The runs of one round ran back to back, so their ratio holds while this
    machine's speed drifts between rounds, which a ratio of medians does not.
    """
    return statistics.median(getattr(numerator, field) / getattr(denominator, field)
                             for numerator, denominator
                             in zip(numerators, denominators, strict=True))


def _range(values):
    return f"{min(values):.2f}–{max(values):.2f}"


def _throughput(nbytes, seconds):
    return f"{nbytes / 1e9 / seconds:.3g}"


def _verdict(met):
    return "met" if met else "**not met**"


def cold_label(read_limit):
    """How the tables name a cold run: the page cache, and the read limit if any."""
    if read_limit is None:
        return "cold page cache"
    return f"cold page cache, reads limited to {read_limit.bytes_per_second / 1e6:.0f} MB/s"


def single_rows(workload, prefix, results, roles, copies, read_limit=None):
    """Returns `(figure rows, target rows)` of the markdown tables for one checkpoint.

    Args:
        workload, prefix: the workload and its legacy checkpoint.
        results: `measure_single`'s.
        roles: `inspect`'s role totals.
        copies: `{WARM: measure_copy(...), COLD: measure_copy(..., cold=True)}`.
        read_limit: the `ReadLimit` of the cold runs, or None.
    """
    cold = cold_label(read_limit)
    source = _source_bytes(prefix)
    slots = roles.get("optimizer_slot", {}).get("bytes", 0)
    trainable = roles.get("trainable", {}).get("bytes", 0)
    label = (f"{workload.name} ({source / 1e9:.2f} GB on disk: {trainable / 1e6:.0f} MB "
             f"trainable, {slots / 1e6:.0f} MB optimizer slots)")
    names = {FLOOR: "floor (import, build, write)", OURS: "`python -m migrate convert`",
             GUIDE: "guide recipe (read all, assign, write)",
             OURS_COLD: f"`python -m migrate convert`, {cold}",
             GUIDE_COLD: f"guide recipe, {cold}"}
    figures = []
    for run in (FLOOR, OURS, GUIDE, OURS_COLD, GUIDE_COLD):
        seconds = [result.seconds for result in results[run]]
        throughput = ("—" if run == FLOOR
                      else _throughput(source, _median_seconds(results[run])))
        figures.append(f"| {label if run == FLOOR else ''} | {names[run]} | "
                       f"{_median_seconds(results[run]):.2f} ({_range(seconds)}) | "
                       f"{_median_cpu(results[run]):.2f} | "
                       f"{_median_peak(results[run]) / 1e6:.0f} | {throughput} |")
    for cache, runs in copies.items():
        seconds = [run["seconds"] for run in runs]
        figures.append(f"| | plain copy of the {trainable / 1e6:.0f} MB kept, "
                       f"{cold if cache == COLD else 'warm page cache'} | "
                       f"{statistics.median(seconds):.2f} ({_range(seconds)}) | — | — | "
                       f"{_throughput(trainable, statistics.median(seconds))} |")
    wall = _paired_ratio(results[OURS], results[FLOOR], "seconds")
    cpu = _paired_ratio(results[OURS], results[FLOOR], "cpu_seconds")
    peak = _paired_ratio(results[OURS], results[FLOOR], "peak_bytes")
    guide = _paired_ratio(results[GUIDE], results[OURS], "seconds")
    guide_peak = _paired_ratio(results[GUIDE], results[OURS], "peak_bytes")
    cold_guide = _paired_ratio(results[GUIDE_COLD], results[OURS_COLD], "seconds")
    cold_floor = _paired_ratio(results[OURS_COLD], results[FLOOR], "seconds")
    targets = [
        f"| {workload.name}: wall time, ours / floor | {wall:.3f}x | <= {WALL_VS_FLOOR}x | "
        f"{_verdict(wall <= WALL_VS_FLOOR)} |",
        f"| {workload.name}: CPU time, ours / floor | {cpu:.3f}x | <= {CPU_VS_FLOOR}x | "
        f"{_verdict(cpu <= CPU_VS_FLOOR)} |",
        f"| {workload.name}: peak RSS, ours / floor | {peak:.3f}x | <= {RSS_VS_FLOOR}x | "
        f"{_verdict(peak <= RSS_VS_FLOOR)} |",
        f"| {workload.name}: wall time, guide / ours | {guide:.3f}x | >= {GUIDE_VS_OURS}x | "
        f"{_verdict(guide >= GUIDE_VS_OURS)} |",
        f"| {workload.name}: {cold}, wall time, guide / ours | {cold_guide:.3f}x | "
        f">= {COLD_GUIDE_VS_OURS}x | {_verdict(cold_guide >= COLD_GUIDE_VS_OURS)} |",
        f"| {workload.name}: {cold}, wall time, ours / floor (no target) | "
        f"{cold_floor:.3f}x | — | — |",
        f"| {workload.name}: peak RSS, guide / ours (no target) | {guide_peak:.3f}x | — | — |",
    ]
    return figures, targets


def measure_partitioned(workload, prefix, workdir, repeats):
    """Measures floor and ours (mod and div tables) on the partitioned embedding.

    Returns:
        `({run: [Measurement]}, one partition's bytes)`.
    """
    import partitioned_embedding

    model = workload.model
    output = os.path.join(workdir, "out-partitioned")
    directory = os.path.dirname(prefix)
    commands = {
        FLOOR: _script(f"--baseline={FLOOR}", f"--model={model}",
                       f"--prefix={os.path.join(output, 'ckpt')}"),
        OURS: _python("-m", "migrate", "convert", f"--checkpoint={prefix}",
                      f"--table={os.path.join(directory, 'mod.toml')}", f"--model={model}",
                      f"--output={output}"),
        OURS_DIV: _python("-m", "migrate", "convert", f"--checkpoint={prefix}",
                          f"--table={os.path.join(directory, 'div.toml')}", f"--model={model}",
                          f"--output={output}"),
    }
    partition = partitioned_embedding.ROWS * partitioned_embedding.WIDTH * 4 // (
        partitioned_embedding.PARTITIONS)
    return _measure_rotated(workload, commands, output, repeats), partition


def partitioned_rows(prefix, results, partition_bytes):
    """Returns `(figure rows, target rows)` for the partitioned embedding."""
    import partitioned_embedding

    source = _source_bytes(prefix)
    label = (f"partitioned embedding ({source / 1e9:.2f} GB, {partitioned_embedding.PARTITIONS} "
             f"partitions of {partition_bytes / 1e6:.0f} MB)")
    names = {FLOOR: "floor (import, build, write)",
             OURS: "`python -m migrate convert`, `mod` table (`unpartition_mod(8)`)",
             OURS_DIV: "`python -m migrate convert`, `div` table (plain rule)"}
    figures, targets = [], []
    floor_peak = _median_peak(results[FLOOR])
    for run in (FLOOR, OURS, OURS_DIV):
        seconds = [result.seconds for result in results[run]]
        seconds_median = statistics.median(seconds)
        figures.append(f"| {label if run == FLOOR else ''} | {names[run]} | "
                       f"{seconds_median:.2f} ({_range(seconds)}) | "
                       f"{_median_cpu(results[run]):.2f} | "
                       f"{_median_peak(results[run]) / 1e6:.0f} | "
                       f"{'—' if run == FLOOR else _throughput(source, seconds_median)} |")
        if run != FLOOR:
            above = (_median_peak(results[run]) - floor_peak) / 1e6
            met = _median_peak(results[run]) <= floor_peak + partition_bytes
            targets.append(f"| partitioned ({run.split(', ')[1] if ', ' in run else 'mod table'}): "
                           f"peak RSS above the floor | {above:+.0f} MB | <= one partition "
                           f"({partition_bytes / 1e6:.0f} MB) | {_verdict(met)} |")
    return figures, targets


def batch_rows(directory, results, count):
    """Returns `(figure rows, target rows)` for the batch workload."""
    source = sum(_source_bytes(os.path.join(directory, f"model.ckpt-{step}"))
                 for step in range(1, count + 1))
    batch_seconds = _median_seconds(results[BATCH])
    separate = results[SEPARATE]
    separate_total = sum(result.seconds for result in separate)
    label = f"batch of {count} small_convnet step checkpoints ({source / 1e6:.1f} MB on disk)"
    figures = [
        f"| {label} | `python -m migrate batch` | {batch_seconds:.2f} "
        f"({_range([result.seconds for result in results[BATCH]])}) | "
        f"{_median_cpu(results[BATCH]):.2f} | "
        f"{_median_peak(results[BATCH]) / 1e6:.0f} | {_throughput(source, batch_seconds)} |",
        f"| | {count} separate `convert` runs (total; one run: median "
        f"{_median_seconds(separate):.2f}, {_range([result.seconds for result in separate])}) | "
        f"{separate_total:.2f} | {sum(result.cpu_seconds for result in separate):.2f} | "
        f"{_median_peak(separate) / 1e6:.0f} (one run) | "
        f"{_throughput(source, separate_total)} |",
    ]
    per_checkpoint = statistics.median(results[PER_CHECKPOINT])
    decision = statistics.median(results[DECISIONS]) / count
    figures[1:1] = [
        f"| | one checkpoint inside its worker (median of the report's per-checkpoint seconds: "
        f"fixed cost, kilobytes kept) | {per_checkpoint:.3f} ({_range(results[PER_CHECKPOINT])}) "
        f"| — | — | — |",
        f"| | rerun inside `convert_batch` (its report's seconds: scan, {count} resume "
        f"decisions, report) | {statistics.median(results[DECISIONS]):.3f} | — | — | — |",
    ]
    speedup = separate_total / batch_seconds
    targets = [f"| batch: wall time, {count} separate runs / batch | {speedup:.1f}x | "
               f">= {SEPARATE_VS_BATCH:.0f}x | {_verdict(speedup >= SEPARATE_VS_BATCH)} |",
               f"| batch: fixed cost of one checkpoint inside its worker | "
               f"{per_checkpoint * 1e3:.1f} ms | <= {PER_SMALL_CHECKPOINT * 1e3:.0f} ms | "
               f"{_verdict(per_checkpoint <= PER_SMALL_CHECKPOINT)} |",
               f"| batch: rerun inside `convert_batch`, per up-to-date checkpoint | "
               f"{decision * 1e3:.2f} ms | <= {PER_UP_TO_DATE * 1e3:.0f} ms | "
               f"{_verdict(decision <= PER_UP_TO_DATE)} |"]
    return figures, targets


def markdown(figures, targets, repeats, load_before, load_after):
    """Returns the report: a header, the figures table and the targets table."""
    import migrate

    header = (f"tf1-migrate {migrate.__version__}, Python {platform.python_version()}, "
              f"{os.cpu_count()} CPUs, {platform.machine()}; each figure the median of "
              f"{repeats} runs, every run a separate process (range in brackets); load "
              f"average {load_before:.1f} before, {load_after:.1f} after.")
    lines = [header, "",
             "| workload | run | wall s | CPU s | peak RSS MB | GB/s read |",
             "|---|---|---:|---:|---:|---:|", *figures, "",
             "| target | measured | goal | |", "|---|---:|---|---|", *targets, "",
             "GB/s: the legacy checkpoint's bytes on disk over the wall time. Floor: import "
             "TensorFlow, build the Keras model, `tf.train.Checkpoint.write`, no reading. The "
             "batch's step checkpoints are copies of one checkpoint (a conversion's cost does "
             "not depend on the values); the vgg_16-sized batch's are hard links to one, so "
             "its reads, like the plain copy's, come from a warm page cache. CPU: user + "
             "system seconds of the process and the workers it waited for. The project's "
             "modules were compiled to bytecode first, as an installed package's are. Ratios "
             "to the floor (and cold guide / ours) are medians of the ratios within each "
             "rotated round, the runs of a round being minutes apart at most."]
    return "\n".join(lines) + "\n"


def run_floor(model, prefix):
    """The process floor: import TensorFlow, build the model, write its checkpoint."""
    import tensorflow as tf

    from migrate.planning import target as target_model

    built = target_model.build(target_model.load_factory(model))
    tf.train.Checkpoint(model=built).write(prefix)


def run_guide(checkpoint, table_path, model, prefix):
    """The guide's recipe: read every checkpoint variable, assign the mapped ones, write.

    The name mapping comes from the same table as ours (a guide user writes
    it by hand); layout rules (BERT's attention heads) use the same converters.
    """
    import tensorflow as tf

    from migrate.mapping import layouts
    from migrate.planning import target as target_model
    from migrate.mapping import transforms
    from migrate.mapping.table import MappingTable

    table = MappingTable.load(table_path)
    built = target_model.build(target_model.load_factory(model))
    variables = {target_model.weight_path(variable): variable for variable in built.weights}
    reader = tf.train.load_checkpoint(checkpoint)
    pending = {}
    for key in reader.get_variable_to_dtype_map():
        value = reader.get_tensor(key)
        found = table.lookup(key)
        if found is None or found.rule.drop:
            continue
        if found.rule.layout is None:
            variables[found.target].assign(transforms.apply_all(found.rule.transforms, value))
            continue
        converter = layouts.get(found.rule.layout)
        parameters = dict(found.rule.parameters)
        parts = pending.setdefault((found.rule.index, found.scope), {})
        parts[found.part] = value
        if set(converter.sources(parameters)) <= set(parts):
            shapes = {part: tuple(variables[f"{found.target}/{part}"].shape)
                      for part in converter.targets(parameters)}
            for part, array in converter.convert(parts, shapes, parameters).items():
                variables[f"{found.target}/{part}"].assign(array)
            del pending[(found.rule.index, found.scope)]
    tf.train.Checkpoint(model=built).write(prefix)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    if _BASELINE.value == FLOOR:
        return run_floor(_MODEL.value, _PREFIX.value)
    if _BASELINE.value == GUIDE:
        return run_guide(_CHECKPOINT.value, _TABLE.value, _MODEL.value, _PREFIX.value)
    compile_bytecode()
    workdir = _WORKDIR.value or tempfile.mkdtemp(prefix="tf1-migrate-benchmark-")
    os.makedirs(workdir, exist_ok=True)
    workloads = _workloads()
    load_before = os.getloadavg()[0]
    figures, targets = [], []
    try:
        for name in _WORKLOADS.value:
            workload = workloads[name]
            # Workloads with one builder (vgg_16, batch_vgg_16) share its checkpoint.
            prefix = (None if name in ("partitioned", "batch_dense") else _legacy_checkpoint(
                workload, os.path.join(workdir, f"legacy-{workload.builder}")))
            if name == "batch_vgg_16":
                roles = _roles(prefix)
                kept = roles.get("trainable", {}).get("bytes", 0)
                directory = _linked_checkpoints(
                    prefix, os.path.join(workdir, "legacy-batch-vgg_16"),
                    _LARGE_BATCH_CHECKPOINTS.value)
                count = _LARGE_BATCH_CHECKPOINTS.value
                results = measure_large_batch(
                    workload, directory, workdir, _REPEATS.value,
                    functools.partial(plain_batch_copy, prefix, kept, count, workdir))
                # After the batches: the copy's buffers would otherwise be in
                # the memory of every process this one starts (ru_maxrss counts
                # a child's pages from before its exec).
                copies = measure_copy(prefix, kept, workdir, _REPEATS.value)
                rows = large_batch_rows(prefix, results, copies, count, kept)
            elif name == "batch_dense":
                import dense_stack

                megabytes = _DENSE_MEGABYTES.value
                prefix = _dense_checkpoint(
                    os.path.join(workdir, f"legacy-dense-{megabytes:g}"), megabytes)
                os.environ[dense_stack.WIDTH_VARIABLE] = str(dense_stack.width_for(megabytes))
                kept = _roles(prefix).get("trainable", {}).get("bytes", 0)
                count = _DENSE_CHECKPOINTS.value
                directory = _linked_checkpoints(
                    prefix, os.path.join(workdir, f"legacy-batch-dense-{megabytes:g}-{count}"),
                    count, damaged=False)
                results = measure_dense_batch(
                    workload, directory, os.path.join(os.path.dirname(prefix), "table.toml"),
                    workdir, _REPEATS.value,
                    functools.partial(plain_batch_copy, prefix, kept, count, workdir))
                rows = dense_batch_rows(prefix, results, count, kept)
            elif name == "partitioned":
                prefix = _partitioned_checkpoint(os.path.join(workdir, "legacy-partitioned"))
                results, partition = measure_partitioned(workload, prefix, workdir,
                                                         _REPEATS.value)
                rows = partitioned_rows(prefix, results, partition)
            elif name == "batch":
                directory = _batch_checkpoints(
                    prefix, os.path.join(workdir, "legacy-batch-steps"),
                    _BATCH_CHECKPOINTS.value)
                results = measure_batch(workload, directory, workdir, _BATCH_CHECKPOINTS.value,
                                        _REPEATS.value)
                rows = batch_rows(directory, results, _BATCH_CHECKPOINTS.value)
            else:
                read_limit = (ReadLimit(prefix + ".index", _COLD_READ_LIMIT.value * 10**6)
                              if _COLD_READ_LIMIT.value else None)
                results = measure_single(workload, prefix, workdir, _REPEATS.value, read_limit)
                roles = _roles(prefix)
                kept = roles.get("trainable", {}).get("bytes", 0)
                copies = {cache: measure_copy(prefix, kept, workdir, _REPEATS.value,
                                              cold=cache == COLD, read_limit=read_limit)
                          for cache in (WARM, COLD)}
                rows = single_rows(workload, prefix, results, roles, copies, read_limit)
            figures.extend(rows[0])
            targets.extend(rows[1])
    finally:
        if _WORKDIR.value is None:
            shutil.rmtree(workdir, ignore_errors=True)
    report = markdown(figures, targets, _REPEATS.value, load_before, os.getloadavg()[0])
    print(report)
    if _OUTPUT.value:
        with open(_OUTPUT.value, "w", encoding="utf-8") as file:
            file.write(report)
    return 0


if __name__ == "__main__":
    app.run(main)
