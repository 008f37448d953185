"""Layer by layer: each Keras layer's output against the legacy tensor it corresponds to.

The comparison, its report rows, their table text and plot. Which legacy
tensor is a layer's twin (lookups, while loops, bidirectional merges, static
unrolls, summed tables, the closest tensor under the variables' scope) is
`layer_twins`' job. A layer with no twin of its own is "not compared",
never counted as agreeing. A layer of several outputs (an RNN with
`return_state`) is compared on its first. The first layer whose difference
exceeds the tolerance is where the conversion went wrong.
"""

import dataclasses
import os

import numpy as np

from migrate.errors import ArgumentError
from migrate.errors import MigrateError
from migrate.errors import first_line
from migrate.planning import target as target_model
from migrate.verification import layer_twins
from migrate.verification import legacy_feed
from migrate.verification import legacy_run

NOT_COMPARED = "not compared"


@dataclasses.dataclass
class LayerDiff:
    """One Keras layer's output against its legacy twin.

    Attributes:
        layer: the Keras layer name.
        legacy_tensor: the legacy tensor taken as its twin, or None when none fits.
        shape: the Keras layer output's shape.
        max_abs_diff, max_rel_diff: as in `VerifyReport` (None without a twin).
        sources: the TF1 variables converted into the layer.
        rules: indexes of the table rules that converted them.
        diverged: the difference exceeds the tolerance (False when not compared).
    """

    layer: str
    legacy_tensor: str | None
    shape: list
    max_abs_diff: float | None
    max_rel_diff: float | None
    sources: list
    rules: list
    diverged: bool

    @property
    def compared(self):
        """False when no legacy tensor of its own fits: "not compared", never agreeing."""
        return self.legacy_tensor is not None

    def to_json(self):
        return {**dataclasses.asdict(self), "compared": self.compared}


def table_text(layers, first_divergent_layer):
    """Returns the readable per-layer table (and the first divergent layer's sources)."""
    width = max([len("layer")] + [len(item["layer"]) for item in layers])
    lines = [f"{'layer':<{width}}  {'max rel diff':>12}  legacy tensor"]
    for item in layers:
        diff = "-" if item["max_rel_diff"] is None else f"{item['max_rel_diff']:.3g}"
        mark = "  <- first divergent" if item["layer"] == first_divergent_layer else ""
        twin = item["legacy_tensor"] or f"{NOT_COMPARED} (no legacy tensor of its own fits)"
        lines.append(f"{item['layer']:<{width}}  {diff:>12}  {twin}{mark}")
    if first_divergent_layer is None:
        uncompared = sum(1 for item in layers if item["legacy_tensor"] is None)
        lines.append("no compared layer diverges beyond the tolerance" +
                     (f" ({uncompared} not compared)" if uncompared else ""))
    else:
        position = next(index for index, item in enumerate(layers)
                        if item["layer"] == first_divergent_layer)
        item = layers[position]
        lines.append(f"first divergent layer {first_divergent_layer}: fed by "
                     f"{', '.join(item['sources'])} (table rules {item['rules']})")
        before = [other["layer"] for other in layers[:position] if other["legacy_tensor"] is None]
        if before:
            # A MultiRNNCell's inner cells run inside its loop: the error may start there.
            lines.append(f"not compared before it (the divergence may start there): "
                         f"{', '.join(before)}")
    return "\n".join(lines)


def attach(report, checkpoint, model, settings, *, ema, arrays, plan, planned_model=None):
    """Runs the layer-by-layer comparison and records it in `report`.

    When no plan is known (no table), or the model is not a functional Keras
    model, `report.layers_note` says why there is no comparison; when `layers`
    was asked for explicitly, that is an error instead.

    Args:
        report: the `VerifyReport` of the parity check.
        checkpoint: the opened `LegacyCheckpoint`.
        model: the Keras model compared.
        settings: the `VerifySettings` of the parity check.
        ema: restore the legacy graph's moving averages.
        arrays: the arrays fed in the parity check, by tensor name.
        plan: the `ConversionPlan` saying which variables fed which weight, or None.
        planned_model: the model `plan` was made for, when not `model`.

    Raises:
        ArgumentError: the comparison was asked for and cannot be made.
    """
    try:
        if plan is None:
            raise ArgumentError(
                "The layer-by-layer comparison needs the mapping table that says which TF1 "
                "variables fed each layer. Expected table, or converted naming an output whose "
                "manifest records a readable table. Received: table=None", option="table")
        sources = layer_sources(plan, planned_model if planned_model is not None else model,
                                model)
        report.layers = [item.to_json() for item in compare_layers(
            checkpoint, model, settings, sources=sources, ema=ema, arrays=arrays)]
    except MigrateError as error:
        if settings.layers:
            raise
        report.layers_note = f"no layer-by-layer comparison: {error}"
        return
    except Exception as error:  # pylint: disable=broad-except
        # Run because parity failed, the comparison only helps: an error of
        # its own must not take the place of the parity figure it explains.
        if settings.layers:
            raise
        report.layers_note = (f"no layer-by-layer comparison: it failed with "
                              f"{type(error).__name__}: {first_line(error)}")
        return
    report.first_divergent_layer = next(
        (item["layer"] for item in report.layers if item["diverged"]), None)


def layer_sources(plan, planned_model, model):
    """Returns `[(layer, [TF1 variables], [rule indexes])]` for layers with converted weights.

    Args:
        plan: the `ConversionPlan`.
        planned_model: the model the plan was made for.
        model: the model whose layers are returned: `planned_model` itself,
            or one of the same structure (its layers correspond one to one).

    Layers come in the model's (topological) order.
    """
    by_variable = {id(variable): path
                   for path, (_, variable) in target_model.weights(planned_model).items()}
    by_target = {}
    for assignment in plan.assignments:
        for target in assignment.targets:
            by_target[target] = (assignment.sources, assignment.rule.index)
    found = []
    for planned_layer, layer in zip(planned_model.layers, model.layers):
        sources, rules = [], []
        for variable in planned_layer.weights:
            entry = by_target.get(by_variable.get(id(variable)))
            if entry is None:
                continue
            sources.extend(name for name in entry[0] if name not in sources)
            if entry[1] not in rules:
                rules.append(entry[1])
        if sources:
            found.append((layer, sources, sorted(rules)))
    return found


def compare_layers(checkpoint, model, settings, *, sources, ema=False, arrays=None):
    """Compares each converted Keras layer's output with its legacy twin.

    Args:
        checkpoint: the opened `LegacyCheckpoint` (with its `.meta`).
        model: the functional Keras model with the converted weights.
        settings: the `VerifySettings` of the parity check.
        sources: `layer_sources(...)`: the layers with converted weights.
        ema: restore the legacy graph's moving averages.
        arrays: the arrays fed in the parity check, by tensor name.

    Returns:
        A list of `LayerDiff`, in the model's layer order.

    Raises:
        ArgumentError: the model is not functional (its layers' outputs
            cannot be taken), or no layer has converted weights.
    """
    import keras

    if not sources:
        raise ArgumentError("No layer of the model holds weights the table converts. Expected "
                            "the table of this conversion. Received: no converted layer")
    try:
        probe = keras.Model(model.input, [_first_output(layer.output)
                                          for layer, _, _ in sources])
    except (AttributeError, ValueError, TypeError) as error:
        raise ArgumentError(f"The layer-by-layer comparison takes each layer's output, which only "
                            f"a functional Keras model exposes: {error}. Received: "
                            f"model={type(model).__name__}") from None
    finder = layer_twins.TwinFinder([(layer.name, names) for layer, names, _ in sources], arrays)
    feed, _, legacy, _ = legacy_run.run_legacy(
        checkpoint, settings, legacy_feed.keras_input_names(model), ema=ema, arrays=arrays,
        extra_tensors=finder.candidates)
    # The probe takes the model's own input structure (a dict for keras-hub's backbones).
    outputs = probe(feed.keras_inputs(by_name=legacy_feed.takes_dict(model)), training=False)
    outputs = outputs if isinstance(outputs, (list, tuple)) else [outputs]
    results = []
    for (layer, names, rules), output in zip(sources, outputs):
        output = np.asarray(output)
        twin, max_abs, max_rel = finder.closest(layer.name, output, legacy)
        results.append(LayerDiff(
            layer=layer.name, legacy_tensor=twin, shape=list(output.shape),
            max_abs_diff=max_abs, max_rel_diff=max_rel, sources=list(names), rules=rules,
            diverged=max_rel is not None and max_rel > settings.tolerance))
    return results


def _first_output(output):
    """A layer's first output: a recurrent layer's with `return_state` returns `[output, *states]`.

    Its states have no legacy tensor of their own (the loop's final state is
    not stacked), and a cell state compared with the output sequence's last
    step would diverge falsely, so a layer of several outputs is compared on
    its first.
    """
    import keras

    return keras.tree.flatten(output)[0]


def plot(layers, path, *, tolerance):
    """Writes a PNG of the max relative difference per layer (log scale) to `path`.

    Needs matplotlib (the `plot` extra); the text table is always in the report.

    Raises:
        ArgumentError: matplotlib is not installed.
    """
    try:
        import matplotlib
        matplotlib.use("Agg")
        from matplotlib import pyplot
    except ImportError:
        raise ArgumentError("The layer plot needs matplotlib (pip install 'tf1-migrate[plot]'). "
                            f"Expected matplotlib installed. Received: plot={path!r}",
                            option="plot") from None
    names = [item["layer"] for item in layers]
    values = [item["max_rel_diff"] if item["max_rel_diff"] else np.nan for item in layers]
    figure, axes = pyplot.subplots(figsize=(max(6, 0.35 * len(names)), 4))
    axes.bar(range(len(names)), values, color=["tab:red" if item["diverged"] else "tab:blue"
                                               for item in layers])
    axes.axhline(tolerance, color="black", linestyle="--", label=f"tolerance {tolerance:g}")
    axes.set_yscale("log")
    axes.set_xticks(range(len(names)), names, rotation=90, fontsize=7)
    axes.set_ylabel("max relative difference")
    axes.legend()
    figure.tight_layout()
    temporary = f"{path}.partial-{os.getpid()}.png"
    figure.savefig(temporary, format="png")
    pyplot.close(figure)
    os.replace(temporary, path)
    return path
