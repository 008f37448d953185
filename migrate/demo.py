"""The main job end to end: build a legacy checkpoint, convert it, restore it, verify it."""

import json
import os
import shutil
import sys
import time

import legacy_graphs
from migrate import pipeline
from migrate import zoo
from migrate.options import ConversionOptions
from migrate.verification.restore import restore

REPORT_NAME = "report.json"


def run(*, zoo_name="resnet_v1_50", workdir="demo_output", overwrite=True, batch_size=2, seed=0,
        show_stages=True):
    """Runs the whole path for one zoo entry and returns a JSON-ready result.

    1. `legacy_graphs/<name>.py` trains a few steps in TF1 graph mode and saves
       a checkpoint with its `.meta` (in its own process).
    2. The checkpoint is converted twice: trainable weights only (the default)
       and with the model state (BatchNorm statistics) where the model has any.
    3. Each output is restored into a fresh Keras model and compared with the
       legacy graph on a seeded random batch.

    Args:
        zoo_name: the zoo entry to run.
        workdir: directory for the legacy checkpoint, the outputs and the report.
        overwrite: replace earlier outputs of the demo.
        batch_size: rows of the verification batch.
        seed: seed of the legacy training and of the verification batch.
        show_stages: print each stage to standard error as it starts (building
            the legacy checkpoint takes tens of seconds).

    Returns:
        A dict with the conversion and verification reports; `passed` is True
        when the complete output (model state included) is within tolerance.

    Example:

        results = run(zoo_name="small_convnet", workdir="/tmp/demo")
        print(summary(results))
    """
    stage = _StagePrinter(enabled=show_stages)
    entry = zoo.get(zoo_name)
    legacy_dir = os.path.join(workdir, "legacy", zoo_name)
    if os.path.exists(legacy_dir):
        shutil.rmtree(legacy_dir)
    stage(f"building the legacy TF1 checkpoint of {zoo_name} (graph-mode training in its own "
          f"process) in {legacy_dir}")
    prefix = legacy_graphs.build_in_subprocess(zoo_name, legacy_dir, seed=seed)
    results = {"zoo": zoo_name, "checkpoint": prefix, "conversions": []}
    checkpoint = pipeline.open_checkpoint(prefix)
    keeps = ["trainable"]
    if entry.build_model().non_trainable_weights:
        keeps.append("model_state")
    for keep in keeps:
        output = os.path.join(workdir, "converted", f"{zoo_name}-{keep}")
        stage(f"converting with keep={keep} into {output}")
        report = pipeline.convert(checkpoint, entry.table_path, entry.build_model, output,
                                  options=ConversionOptions(keep=keep), overwrite=overwrite,
                                  model_name=entry.model_factory)
        stage(f"verifying the keep={keep} output against the legacy graph")
        model = entry.build_model()
        restored = restore(model, output)
        verified = pipeline.verify(checkpoint, model, batch_size=batch_size, seed=seed, **entry.verify)
        results["conversions"].append({
            "keep": keep, "output": output, "report": report.to_json(),
            "restored": len(restored.restored), "unchanged": len(restored.unchanged),
            "verify": verified.to_json()})
    results["passed"] = results["conversions"][-1]["verify"]["passed"]
    results["report"] = os.path.join(workdir, REPORT_NAME)
    with open(results["report"], "w", encoding="utf-8") as file:
        json.dump(results, file, indent=2, sort_keys=True)
        file.write("\n")
    return results


def summary(results):
    """Returns the demo's result as a few readable lines."""
    lines = [f"demo: {results['zoo']}: legacy checkpoint {results['checkpoint']}"]
    for item in results["conversions"]:
        report, verified = item["report"], item["verify"]
        kept = sum(entry["kept"] for entry in report["roles"].values())
        left_out = sum(entry["left_out"] for entry in report["roles"].values())
        lines.append(
            f"  keep={item['keep']:<12} {report['written_weights']} weights written "
            f"({kept} source variables kept, {left_out} left out) -> {item['output']}")
        lines.append(
            f"    restored {item['restored']}, {item['unchanged']} at initial value; "
            f"max abs diff {verified['max_abs_diff']:.3g}, max relative diff "
            f"{verified['max_rel_diff']:.3g} (tolerance {verified['tolerance']:g}): "
            f"{'PASS' if verified['passed'] else 'differs'}")
    lines.append("demo " + ("PASSED" if results["passed"] else "FAILED") +
                 ": the complete conversion matches the legacy graph"
                 + ("" if results["passed"] else " NOT within tolerance")
                 + f"; JSON report: {results['report']}")
    return "\n".join(lines)


class _StagePrinter:
    """Prints `demo: <stage> ...` lines to standard error with the time since the start."""

    def __init__(self, *, enabled):
        self.enabled = enabled
        self.started = time.monotonic()

    def __call__(self, text):
        if self.enabled:
            print(f"demo [{time.monotonic() - self.started:5.1f}s]: {text} ...", file=sys.stderr,
                  flush=True)
