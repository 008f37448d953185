"""Runs every bad input of the robustness corpus through the real command line; prints the figures.

The corpus is `tests/damage.py`: damaged checkpoints (truncated, flipped,
missing shards, broken state files, a foreign `.meta`, index records that
used to abort TensorFlow), unusual tensors (string, int, bool, NaN/Inf),
broken and hostile tables, unwritable, full and existing outputs, a run
killed mid-write, hostile and unicode names, and batch inputs. Each case is
run as `python -m migrate ...` subprocesses in a directory of its own.

Figures (the goal: all tried, all clean, zeros elsewhere):
    tried            cases run
    clean            exit code, the one error line and its text, nothing left
                     behind, inputs unchanged: everything as expected
    tracebacks       cases whose standard error shows a Python traceback
    crashes          a process died of a signal it was not sent on purpose,
                     or printed a native abort (`Check failed`, `Fatal Python error`)
    partial outputs  an output or a `.NAME.partial-*` directory left by a failure
    inputs modified  an input file whose bytes changed

Usage:
    python scripts/robustness_report.py                 # every case, 2 at a time
    python scripts/robustness_report.py --cases=data_flipped,killed_mid_write --json

Exit status: 0 when every case is clean, 1 otherwise.
"""

import os
import sys

# Python puts this script's directory first on sys.path, where sibling scripts
# named like standard modules (scripts/inspect.py) would shadow them.
SCRIPTS = os.path.dirname(os.path.abspath(__file__))
sys.path[:] = [entry for entry in sys.path if os.path.abspath(entry or ".") != SCRIPTS]
REPOSITORY = os.path.dirname(SCRIPTS)
sys.path[:0] = [REPOSITORY, os.path.join(REPOSITORY, "tests")]

import concurrent.futures  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

import damage  # noqa: E402

FIGURES = ("tried", "clean", "tracebacks", "crashes", "partial_outputs", "inputs_modified")

_CASES = flags.DEFINE_list("cases", None, "Case names to run (default: all).")
_JOBS = flags.DEFINE_integer("jobs", 2, "Cases run at the same time.")
_CHECKPOINT = flags.DEFINE_string(
    "checkpoint", None, f"Healthy {damage.SEED_MODEL} checkpoint prefix; default: build one.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Where the cases run (default: a temp dir).")
_KEEP = flags.DEFINE_bool("keep", False, "Keep the work directory afterwards.")
_JSON = flags.DEFINE_bool("json", False, "Print the JSON document instead of the table.")


def _build_seed(workdir):
    import legacy_graphs
    return legacy_graphs.build_in_subprocess(damage.SEED_MODEL, os.path.join(workdir, "seed"))


def batch_cases():
    """Returns the batch cases when this checkout has `python -m migrate batch`."""
    if not os.path.exists(os.path.join(REPOSITORY, "migrate", "batch.py")):
        return ()
    return damage.BATCH_CASES


def run(*, names=None, jobs=2, checkpoint=None, workdir=None, keep=False):
    """Runs the cases and returns the report document.

    Args:
        names: case names, or None for the whole corpus (batch cases included
            when this checkout has `migrate/batch.py`).
        jobs: cases run at the same time.
        checkpoint: a healthy small_convnet prefix; built when None.
        workdir: where the cases run; a temporary directory when None.
        keep: keep `workdir` afterwards (a temporary one is removed otherwise).

    Returns:
        `{"figures": {...}, "cases": [...], "seconds": ...}`.
    """
    started = time.monotonic()
    corpus = {case.name: case for case in (*damage.CASES, *batch_cases())}
    unknown = sorted(set(names or ()) - set(corpus))
    if unknown:
        raise ValueError(f"Unknown case(s) {unknown}. Expected some of: {', '.join(corpus)}")
    cases = [corpus[name] for name in names] if names else list(corpus.values())
    owned = workdir is None
    workdir = os.path.abspath(workdir or tempfile.mkdtemp(prefix="migrate-robustness-"))
    os.makedirs(workdir, exist_ok=True)
    try:
        checkpoint = checkpoint or _build_seed(workdir)
        cases_root = os.path.join(workdir, "cases")
        # Inputs are built here, one case after another (some use TensorFlow);
        # the commands, which take the time, run `jobs` at a time.
        prepared = [(case, damage.prepare(case, cases_root, checkpoint)) for case in cases]
        with concurrent.futures.ThreadPoolExecutor(max(jobs, 1)) as pool:
            outcomes = list(pool.map(lambda item: damage.execute(*item), prepared))
        rows = []
        for (case, _), outcome in zip(prepared, outcomes):
            verdict = damage.classify(case, outcome)
            rows.append({
                "case": case.name, "description": case.description,
                "codes": [step.code for step in outcome.steps],
                "expected_codes": [step.code for step in case.steps],
                "error_line": _error_line(outcome),
                "seconds": round(sum(step.seconds for step in outcome.steps), 1),
                **verdict})
    finally:
        if owned and not keep:
            _remove(workdir)
    figures = {
        "tried": len(rows),
        "clean": sum(row["clean"] for row in rows),
        "tracebacks": sum(row["traceback"] for row in rows),
        "crashes": sum(row["crash"] for row in rows),
        "partial_outputs": sum(row["partial"] for row in rows),
        "inputs_modified": sum(row["inputs_modified"] for row in rows),
    }
    return {"figures": figures, "cases": rows, "workdir": workdir if keep or not owned else None,
            "seconds": round(time.monotonic() - started, 1)}


def _error_line(outcome):
    for step in outcome.steps:
        for line in step.stderr.splitlines():
            if line.startswith(damage.ERROR_PREFIX):
                return line[:240]
    return ""


def _remove(directory):
    for root, directories, _ in os.walk(directory):
        for name in directories:
            os.chmod(os.path.join(root, name), 0o755)  # The read-only case's directory.
    shutil.rmtree(directory, ignore_errors=True)


def format_report(document):
    figures = document["figures"]
    lines = [f"robustness: {figures['tried']} bad inputs tried, {figures['clean']} handled "
             f"cleanly, {figures['tracebacks']} tracebacks, {figures['crashes']} crashes, "
             f"{figures['partial_outputs']} partial outputs, {figures['inputs_modified']} "
             f"inputs modified ({document['seconds']}s)"]
    for row in document["cases"]:
        mark = "ok  " if row["clean"] else "FAIL"
        codes = ",".join(str(code) for code in row["codes"])
        lines.append(f"  {mark} {row['case']:<36} exit {codes:<8} {row['seconds']:>5.1f}s  "
                     f"{row['error_line'][:110] or row['description']}")
        for problem in row["problems"]:
            lines.append(f"         - {problem}")
    return "\n".join(lines)


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {' '.join(argv[1:])}")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    document = run(names=_CASES.value, jobs=_JOBS.value, checkpoint=_CHECKPOINT.value,
                   workdir=_WORKDIR.value, keep=_KEEP.value)
    print(json.dumps(document, indent=2) if _JSON.value else format_report(document))
    figures = document["figures"]
    return 0 if figures["clean"] == figures["tried"] else 1


if __name__ == "__main__":
    app.run(main)
