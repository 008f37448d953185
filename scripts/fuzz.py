"""Fuzzes the table parser and the checkpoint reader with mutated inputs in crash-isolated workers.

Each mutated input is handed to a long-lived worker process (TensorFlow is
imported once per worker, not once per case). A worker that dies, whether by
a signal from TensorFlow's native code (SIGSEGV, SIGABRT) or by exceeding its
memory limit, costs only the case in flight: the case is saved under
`WORKDIR/findings/` for reproduction, re-run through the real command line,
and a new worker takes over. A case that runs past its time limit is a hang
and is treated the same way.

Outcomes per case:
    ok          the input was read completely (the mutation was harmless)
    error       a `migrate.MigrateError`: the one-line error a user sees
    unexpected  any other exception: a bug (the CLI still prints one line)
    crash       the worker process died
    hang        the case exceeded --case_seconds

Usage:
    python scripts/fuzz.py --iterations=200 --seconds=300 --workdir=/tmp/fuzz
    python scripts/fuzz.py --target=table --iterations=500 --json

The run is bounded by both --iterations (per target) and --seconds (total).
Exit status: 0 when there was no crash, hang or unexpected exception; 1 otherwise.
"""

import os
import sys

# Python puts this script's directory first on sys.path, where sibling scripts
# named like standard modules (scripts/inspect.py) would shadow them.
SCRIPTS = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry or ".") != SCRIPTS]
REPOSITORY = os.path.dirname(SCRIPTS)
sys.path[:0] = [REPOSITORY, os.path.join(REPOSITORY, "tests")]

import json  # noqa: E402
import random  # noqa: E402
import resource  # noqa: E402
import select  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

import damage  # noqa: E402  (the mutations; tests/damage.py)
SEED_MODEL = "small_convnet"
TARGETS = ("checkpoint", "table")
OUTCOMES = ("ok", "error", "unexpected", "crash", "hang")
FINDINGS = ("unexpected", "crash", "hang")
# Mutations of these files, relative to the checkpoint prefix; "" is the
# directory's `checkpoint` state file.
CHECKPOINT_PARTS = (".index", ".data-00000-of-00001", ".meta", "")
STATE_FILE_NAME = "checkpoint"
# A structure-aware edit of one `.index` record (see damage.mutate_index).
INDEX_RECORD = "index record"
PART_NAMES = ("index", "data", "meta", "state", "index_record")
_PARTS_BY_NAME = dict(zip(PART_NAMES, CHECKPOINT_PARTS + (INDEX_RECORD,)))
# A worker gets this much address space: enough for TensorFlow (about 1.8 GB
# of mappings after import), small enough that a mutated shape asking for
# terabytes fails at once instead of taking the shared machine's memory.
WORKER_ADDRESS_SPACE = 4 << 30
READY = "ready"
# Names tried against every table: the seed checkpoint's plus adversarial
# ones that make slow patterns show themselves.
HOSTILE_NAMES = ("a" * 1024, "a/" * 512, "a_" * 512, "/" * 1024, "conv/" * 200 + "kernel",
                 "../../x", "é" * 300, "")

_ITERATIONS = flags.DEFINE_integer("iterations", 100, "Cases per target.")
_SECONDS = flags.DEFINE_float("seconds", 300.0, "Time budget for the whole run.")
_CASE_SECONDS = flags.DEFINE_float("case_seconds", 30.0, "A case running longer is a hang.")
_SEED = flags.DEFINE_integer("seed", 0, "Random seed of the mutations.")
_TARGET = flags.DEFINE_multi_enum("target", list(TARGETS), TARGETS, "What to fuzz.")
_PARTS = flags.DEFINE_multi_enum(
    "part", list(PART_NAMES), PART_NAMES,
    "Checkpoint files to mutate: index, data, meta, state (the `checkpoint` file), or "
    "index_record (one .index record edited, checksums kept valid).")
_CHECKPOINT = flags.DEFINE_string(
    "checkpoint", None, f"Seed checkpoint prefix (with .meta); default: build {SEED_MODEL}.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Where cases and findings go (default: temp).")
_JSON = flags.DEFINE_bool("json", False, "Print the JSON summary instead of the table.")
_CONFIRM = flags.DEFINE_bool("confirm", True, "Re-run each crash through `python -m migrate`.")
_WORKER = flags.DEFINE_enum("worker", None, TARGETS, "Internal: run as a worker.")


# Workers -------------------------------------------------------------------

def _worker_checkpoint_case(case, state):
    import migrate
    from migrate import zoo

    entry = zoo.get(SEED_MODEL)
    if "model" not in state:
        state["model"] = entry.build_model()
    checkpoint = migrate.LegacyCheckpoint.open(case["path"])
    for name in checkpoint.variables:
        checkpoint.read(name)
    migrate.pipeline.inspect(checkpoint)
    migrate.plan(checkpoint, entry.table_path, state["model"]).problems


def _worker_table_case(case, state):
    import migrate

    table = migrate.MappingTable.from_bytes(open(case["path"], "rb").read(), origin=case["path"])
    for name in case["names"]:
        table.lookup(name)


def run_worker(target):
    """Serves cases from standard input, one JSON line each, until end of input."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import migrate  # noqa: F401  (import errors surface before the first case)
    if target == "checkpoint":
        import tensorflow  # noqa: F401
        from migrate import zoo
        zoo.get(SEED_MODEL).build_model()
    handle = _worker_checkpoint_case if target == "checkpoint" else _worker_table_case
    state = {}
    print(READY, flush=True)
    for line in sys.stdin:
        case = json.loads(line)
        started = time.monotonic()
        try:
            handle(case, state)
            outcome, message = "ok", ""
        except migrate.MigrateError as error:
            outcome, message = "error", str(error).splitlines()[0]
        except Exception as error:  # The finding this worker exists to catch.
            outcome, message = "unexpected", f"{type(error).__name__}: {error}".splitlines()[0]
        print(json.dumps({"id": case["id"], "outcome": outcome, "message": message[:300],
                          "seconds": round(time.monotonic() - started, 3)}), flush=True)


class Worker:
    """A worker subprocess with a memory limit; replaced after a crash or a hang."""

    def __init__(self, target, log_path):
        self.target = target
        self.log_path = log_path
        self.process = None

    def _limit(self):
        resource.setrlimit(resource.RLIMIT_AS, (WORKER_ADDRESS_SPACE, WORKER_ADDRESS_SPACE))
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))

    def start(self):
        environment = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONPATH=REPOSITORY)
        environment.pop("TF_USE_LEGACY_KERAS", None)
        with open(self.log_path, "w") as log:
            self.process = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), f"--worker={self.target}"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
                preexec_fn=self._limit, cwd=REPOSITORY, env=environment)
        line = self._read_line(300.0)
        if line != READY:
            self.stop()
            raise RuntimeError(f"The {self.target} worker did not start (got {line!r}).")

    def _read_line(self, seconds):
        ready, _, _ = select.select([self.process.stdout], [], [], seconds)
        if not ready:
            return None
        return self.process.stdout.readline().strip()

    def run(self, case, seconds):
        """Returns the worker's result for `case`, or a crash or hang record."""
        if self.process is None or self.process.poll() is not None:
            self.start()
        try:
            self.process.stdin.write(json.dumps(case) + "\n")
            self.process.stdin.flush()
        except BrokenPipeError:
            pass
        line = self._read_line(seconds)
        if line:
            return json.loads(line)
        if line is None and self.process.poll() is None:
            self.stop()
            return {"id": case["id"], "outcome": "hang", "message": f"over {seconds:g}s"}
        code = self.process.wait()
        self.process = None
        died = f"signal {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
        with open(self.log_path, errors="replace") as log:
            last_words = [line.strip() for line in log if line.strip()][-1:]
        return {"id": case["id"], "outcome": "crash",
                "message": f"worker died: {died}" + (f" ({last_words[0][:200]})" if last_words
                                                     else "")}

    def stop(self):
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None


# Campaigns -----------------------------------------------------------------

def _build_seed(workdir):
    import legacy_graphs
    return legacy_graphs.build_in_subprocess(SEED_MODEL, os.path.join(workdir, "seed"))


def checkpoint_cases(seed_prefix, workdir, rng, parts=PART_NAMES):
    """Yields checkpoint cases forever: each mutates one file of a fresh copy of the seed."""
    choices = tuple(_PARTS_BY_NAME[name] for name in parts)
    number = 0
    while True:
        number += 1
        directory = os.path.join(workdir, "case")
        shutil.rmtree(directory, ignore_errors=True)
        prefix = damage.copy_checkpoint(seed_prefix, directory)
        part = rng.choice(choices)
        path = os.path.join(directory, STATE_FILE_NAME) if part == "" else prefix + (
            ".index" if part == INDEX_RECORD else part)
        with open(path, "rb") as file:
            mutation = damage.mutate_index if part == INDEX_RECORD else damage.mutate
            data, description = mutation(file.read(), rng)
        with open(path, "wb") as file:
            file.write(data)
        yield ({"id": number, "path": directory if part == "" else prefix},
               f"{os.path.basename(path)}: {description}", directory)


def table_cases(seed_tables, names, workdir, rng):
    """Yields table cases forever: each mutates one seed table."""
    number = 0
    directory = os.path.join(workdir, "case")
    while True:
        number += 1
        shutil.rmtree(directory, ignore_errors=True)
        os.makedirs(directory)
        seed_name, text = rng.choice(seed_tables)
        data, description = damage.mutate_table(text, rng)
        path = os.path.join(directory, "table.toml")
        with open(path, "wb") as file:
            file.write(data)
        yield ({"id": number, "path": path, "names": names}, f"{seed_name}: {description}",
               directory)


def _seed_tables():
    zoo_directory = os.path.join(REPOSITORY, "migrate", "zoo")
    tables = []
    for name in sorted(os.listdir(zoo_directory)):
        if name.endswith(".toml"):
            with open(os.path.join(zoo_directory, name), encoding="utf-8") as file:
                tables.append((name, file.read()))
    return tables


def confirm_with_cli(finding):
    """Re-runs a checkpoint finding through `python -m migrate inspect`; returns what happened."""
    environment = dict(os.environ, PYTHONPATH=REPOSITORY)
    environment.pop("TF_USE_LEGACY_KERAS", None)
    completed = subprocess.run(
        [sys.executable, "-m", "migrate", "inspect", f"--checkpoint={finding['path']}"],
        capture_output=True, text=True, cwd=REPOSITORY, env=environment, timeout=300, check=False)
    died = completed.returncode < 0
    return {"returncode": completed.returncode,
            "signal": signal.Signals(-completed.returncode).name if died else None,
            "stderr_tail": completed.stderr.strip().splitlines()[-1:] if completed.stderr else []}


def campaign(target, cases, iterations, deadline, case_seconds, findings_directory):
    """Runs cases of one target until `iterations` or `deadline`; returns its summary."""
    counts = dict.fromkeys(OUTCOMES, 0)
    findings = []
    messages = {}
    worker = Worker(target, os.path.join(findings_directory, f"{target}-worker.log"))
    try:
        for _ in range(iterations):
            if time.monotonic() >= deadline:
                break
            case, description, directory = next(cases)
            result = worker.run(case, case_seconds)
            counts[result["outcome"]] += 1
            if result["outcome"] == "error":
                key = result["message"].replace(directory, "CASE")[:90]
                messages[key] = messages.get(key, 0) + 1
            if result["outcome"] in FINDINGS:
                kept = os.path.join(findings_directory, f"{target}-{case['id']}")
                shutil.copytree(directory, kept)
                path = case["path"].replace(directory, kept)
                findings.append({"target": target, "id": case["id"], "outcome": result["outcome"],
                                 "message": result["message"], "mutation": description,
                                 "path": path})
    finally:
        worker.stop()
    return {"cases": sum(counts.values()), **counts, "findings": findings,
            "common_errors": sorted(messages.items(), key=lambda item: -item[1])[:8]}


def run(*, targets, iterations, seconds, case_seconds=30.0, seed=0, checkpoint=None,
        workdir=None, confirm=True, parts=PART_NAMES):
    """Runs the fuzz campaigns and returns the summary document."""
    started = time.monotonic()
    deadline = started + seconds
    owned = workdir is None
    workdir = workdir or tempfile.mkdtemp(prefix="migrate-fuzz-")
    os.makedirs(workdir, exist_ok=True)
    findings_directory = os.path.join(workdir, "findings")
    os.makedirs(findings_directory, exist_ok=True)
    rng = random.Random(seed)
    summary = {"seed": seed, "workdir": workdir, "targets": {}}
    try:
        seed_prefix = checkpoint
        if "checkpoint" in targets or "table" in targets:
            seed_prefix = seed_prefix or _build_seed(workdir)
        if "table" in targets:
            names = _checkpoint_names_in_subprocess(seed_prefix) + list(HOSTILE_NAMES)
            summary["targets"]["table"] = campaign(
                "table", table_cases(_seed_tables(), names, os.path.join(workdir, "table"), rng),
                iterations, deadline, case_seconds, findings_directory)
        if "checkpoint" in targets:
            summary["targets"]["checkpoint"] = campaign(
                "checkpoint", checkpoint_cases(seed_prefix, os.path.join(workdir, "checkpoint"),
                                               rng, parts),
                iterations, deadline, case_seconds, findings_directory)
        if confirm:
            for finding in summary["targets"].get("checkpoint", {}).get("findings", []):
                if finding["outcome"] == "crash":
                    finding["cli"] = confirm_with_cli(finding)
    finally:
        summary["seconds"] = round(time.monotonic() - started, 1)
        if owned and not any(target["findings"] for target in summary["targets"].values()):
            shutil.rmtree(workdir, ignore_errors=True)
    summary["findings"] = sum(len(target["findings"]) for target in summary["targets"].values())
    return summary


def _checkpoint_names_in_subprocess(prefix):
    """Lists the seed's variable names without importing TensorFlow here."""
    code = ("import json, os, sys; os.environ['TF_CPP_MIN_LOG_LEVEL'] = '3'; "
            "import tensorflow as tf; print(json.dumps(sorted("
            "tf.train.load_checkpoint(sys.argv[1]).get_variable_to_shape_map())))")
    completed = subprocess.run([sys.executable, "-c", code, prefix], capture_output=True,
                               text=True, check=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def format_summary(summary):
    lines = [f"fuzz: seed {summary['seed']}, {summary['seconds']}s, workdir {summary['workdir']}",
             f"  {'target':<12}{'cases':>7}" + "".join(f"{name:>12}" for name in OUTCOMES)]
    for target, result in summary["targets"].items():
        lines.append(f"  {target:<12}{result['cases']:>7}"
                     + "".join(f"{result[name]:>12}" for name in OUTCOMES))
    for target, result in summary["targets"].items():
        for message, count in result["common_errors"]:
            lines.append(f"  {target} error x{count}: {message}")
        for finding in result["findings"]:
            lines.append(f"  FINDING {finding['outcome']} ({target} case {finding['id']}, "
                         f"{finding['mutation']}): {finding['message']}; kept at {finding['path']}"
                         + (f"; CLI: {finding['cli']}" if "cli" in finding else ""))
    lines.append(f"  findings: {summary['findings']}")
    return "\n".join(lines)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    if _WORKER.value:
        run_worker(_WORKER.value)
        return 0
    summary = run(targets=tuple(_TARGET.value), iterations=_ITERATIONS.value,
                  seconds=_SECONDS.value, case_seconds=_CASE_SECONDS.value, seed=_SEED.value,
                  checkpoint=_CHECKPOINT.value, workdir=_WORKDIR.value, confirm=_CONFIRM.value,
                  parts=tuple(_PARTS.value))
    print(json.dumps(summary, indent=2) if _JSON.value else format_summary(summary))
    return 1 if summary["findings"] else 0


if __name__ == "__main__":
    app.run(main)
