"""`migrate.suggest`: draft a table from a checkpoint and a model, then prove it."""

import os
import re

from migrate import pipeline
from migrate.errors import ArgumentError
from migrate.errors import MigrateError
from migrate.errors import OutputError
from migrate.mapping.table import MappingTable
from migrate.options import ConversionOptions
from migrate.output import atomic
from migrate.planning import target as target_model
from migrate.source.roles import KEEP_MODES
from migrate.source.roles import Role
from migrate.suggest import align as align_lib
from migrate.suggest import by_value
from migrate.suggest import dataflow
from migrate.suggest import draft_writer
from migrate.suggest import items as items_lib
from migrate.suggest import model_inputs
from migrate.suggest import model_sets
from migrate.suggest import report as report_lib
from migrate.suggest import rules as rules_lib
from migrate.suggest import shared_cells
from migrate.suggest import tf1_structure
from migrate.suggest import tied as tied_lib
from migrate.suggest.report import SuggestReport
from migrate.verification import parity as parity_lib
from migrate.verify_settings import VerifySettings

SETTLED_BY_VALUE = "settled by value: the model's outputs match the legacy graph's"
# Why parity was not run without verify settings (the library names no command-line flag).
NO_OUTPUT_TENSOR = "no output_tensor: give verify settings naming the output tensor to compare"
# `resolve_ambiguous`'s default: the layer-by-layer comparison settles them.
BY_VALUE = "by_value"


def suggest(checkpoint, model, *, output=None, overwrite=False, options=None, verify=None,
            resolve_ambiguous=BY_VALUE):
    """Drafts a mapping table from a legacy checkpoint and a Keras model, and proves it.

    Every kept source variable is matched to a target weight by kind, shape
    (or a squeeze or reshape for 1x1 and whole-map convolutions that became
    Dense layers, or a reshape the graph makes before the use) and position.
    With a graph (a `.meta`, or a builder's), the kind is what the graph does
    with the variable and the position where the data reaches it: the legacy
    forward graph and the model's call traced into a `tf.function` are read
    alike (`dataflow`), and both sides align in that order; names and
    creation order (the `.meta` collection against the order the model built
    its variables) break ties, and are all there is without a graph. A
    product `tf.split` cuts into parts drafts a `split` layout. Variables the
    compared outputs do not depend on are dropped ("not on the path to
    OUTPUT"). A match is certain only when kind, dataflow position and shape
    agree with no rival; each says what decided it (dataflow, shape, name,
    order). Partitioned lookups and parallel branches come from the graph. LSTM,
    GRU and BERT attention scopes become layout rules; a Keras weight's kind
    comes from its layer's class where its name does not say it (Keras 3's
    `DepthwiseConv2D` calls its depthwise kernel `kernel`), and a
    classifier's 1001 classes (tf-slim's background class 0) fill a 1000-class
    model with `slice(-1, 1, 1001)`. Repeating rules are
    folded into regex groups, each with a comment giving its evidence.
    Variables with no target become `drop = true` rules, listed. Target
    weights the model sets itself become `leave` rules with their reason:
    a `Normalization` layer's statistics always, and a weight no source can
    fill (a pooler the legacy model never had) when parity passes without
    it. A subclassed model never called is built by calling it on zeros
    shaped like the legacy graph's inputs. The draft then has to plan clean and, when the graph can run (a `.meta` and
    `verify` settings naming the output; the placeholders are found as
    `migrate.verify` finds them), pass parity. Matches that only order
    decided between parallel identical layers are settled by value: when
    parity fails, the layer-by-layer comparison of each rearrangement picks
    the one whose layer outputs match; without a graph to run they are
    reported as ambiguous, never picked silently.

    Args:
        checkpoint: a legacy checkpoint prefix or directory, or a `LegacyCheckpoint`.
        model: a built Keras model, a factory returning one, or `module:callable`
            (a subclassed model never called is built on the legacy graph's
            input shapes). With parity, the draft's weights are assigned into it.
        output: where to write the draft TOML (even when it is not proven),
            or None.
        overwrite: replace an existing `output` file.
        options: a `ConversionOptions` (`keep`, `ema`, roles; its `verify`
            stands in for `verify` when that is None).
        verify: a `VerifySettings` saying how to run the legacy graph and the
            model (as for `migrate.verify`), or None: parity is not run.
        resolve_ambiguous: `BY_VALUE` (the default) settles ambiguous matches
            with the layer-by-layer comparison when parity fails; a callable
            `(groups, matches) -> {source layer: target layer} or None` chooses
            instead (`groups` lists each ambiguous group's `(source layer,
            target layer)` pairs), its choice drafted and proven again; None
            leaves them reported as ambiguous.

    Returns:
        A `SuggestReport`; `report.ok` says whether the draft is proven.

    Raises:
        ArgumentError: `verify` is not a `VerifySettings`, or
            `resolve_ambiguous` is neither `BY_VALUE`, None nor callable.
        OutputError: `output` exists and `overwrite` is False.
        CheckpointError, ModelError: bad input.

    Example:

        settings = migrate.VerifySettings(output_tensor="logits:0")
        report = migrate.suggest("train/model.ckpt-3", "my_models:build", output="draft.toml",
                                 verify=settings)
        print(report.summary())
    """
    options = options or ConversionOptions()
    verify = verify if verify is not None else options.verify
    if verify is not None and not isinstance(verify, VerifySettings):
        raise ArgumentError(f"Expected verify to be a VerifySettings (or None). "
                            f"Received: verify={verify!r}")
    if not (resolve_ambiguous is None or resolve_ambiguous == BY_VALUE
            or callable(resolve_ambiguous)):
        raise ArgumentError(f"Expected resolve_ambiguous to be {BY_VALUE!r}, None or a callable. "
                            f"Received: resolve_ambiguous={resolve_ambiguous!r}")
    if output is not None and os.path.exists(output) and not overwrite:
        raise OutputError(f"The draft table {output} already exists; refusing to replace it.",
                          option="overwrite")
    checkpoint = pipeline.open_checkpoint(checkpoint, options)

    kept_roles = KEEP_MODES[options.keep]
    kept = [variable for variable in checkpoint.variables.values()
            if variable.role in kept_roles or variable.role is Role.UNKNOWN]
    structure = None
    layer_of = {item_variable.name: item.layer
                for item in items_lib.source_items(kept, order=())
                for item_variable in item.variables}
    outputs = _legacy_outputs(verify)
    if checkpoint.meta_path is not None:
        structure = tf1_structure.read(checkpoint.meta_path, layer_of.get, outputs)
    elif checkpoint.has_graph:  # A legacy_graphs builder's graph stands in for the .meta.
        structure = tf1_structure.from_graph(checkpoint.graph, layer_of.get, outputs)
    # A subclassed model never called is built on zeros shaped like the graph's inputs.
    model = target_model.load_model(model, checkpoint=checkpoint.prefix,
                                    build_on=model_inputs.zeros_for(
                                        structure.inputs if structure else (), verify))
    sources = items_lib.source_items(kept, structure.creation_order if structure else (),
                                     structure)
    off_path = [item for item in sources if not item.on_path] if outputs else []
    sources = [item for item in sources if item.on_path or not outputs]
    weights = target_model.weights(model)
    by_id = {id(variable): weight for weight, variable in weights.values()}
    ordered = [by_id[id(variable)] for variable in items_lib.creation_ordered(model)
               if id(variable) in by_id]
    # The model's call is traced only when the legacy graph shows its uses too.
    target_uses = (dataflow.trace_model(model, {path: variable for path, (_, variable)
                                                 in weights.items()})
                   if structure is not None and structure.uses else {})
    targets = items_lib.target_items(
        ordered, lambda weight: weight.trainable or options.keep == "model_state", target_uses,
        group_attention=any(item.layout == items_lib.ATTENTION for item in sources),
        layer_classes=items_lib.layer_classes(model, target_model.weight_path))
    created = {id(target): index for index, target in enumerate(targets)}
    if target_uses:
        sources = items_lib.dataflow_ordered(sources)
        targets = items_lib.dataflow_ordered(targets)
    matches, unmatched_sources, unmatched_targets = align_lib.align(sources, targets)
    ambiguous = align_lib.mark_ambiguous(matches, structure)
    tied, tied_unconfirmed = tied_lib.tied_candidates(matches, unmatched_targets, structure)
    matches.extend(tied)
    unmatched_targets = _without(unmatched_targets, tied)
    matches, unmatched_sources, unmatched_targets = _whole_splits(matches, unmatched_sources,
                                                                  unmatched_targets)
    shared, taken = shared_cells.shared_cell_candidates(matches, unmatched_targets, structure)
    matches.extend(shared)
    unmatched_targets = [target for target in unmatched_targets
                         if all(target is not other for other in taken)]
    # Preprocessing statistics are the model's own; a weight no source can fill is left as
    # built only while parity runs, and stays so only if the outputs then match.
    # Written in the order the model made them (`mean`, `variance`, `count`), not the dataflow's.
    left = model_sets.preprocessing(
        sorted(unmatched_targets, key=lambda target: created.get(id(target), 0)))
    unmatched_targets = model_sets.remaining(unmatched_targets, left)
    drop_reasons = {item.name: align_lib.drop_reason(item, targets, matches, unmatched_sources,
                                                     unmatched_targets)
                    for item in unmatched_sources}
    not_on_path = f"not on the path to {', '.join(outputs)}"
    drop_reasons.update({item.name: not_on_path for item in off_path})
    unmatched_sources = _unique_items(unmatched_sources + off_path)

    run_parity = verify is not None and checkpoint.runs_own_graph
    parity_note = "" if run_parity else (
        "the checkpoint has no .meta graph to run (a builder, module:callable, can build it)"
        if verify is not None else NO_OUTPUT_TENSOR)
    parity_option = None if run_parity else ("builder" if verify is not None
                                             else "output_tensor")
    parity_errors = []

    # A possible tied weight is the tie's to settle, by the graph or by value.
    never_had = (model_sets.never_had(_without(unmatched_targets, tied_unconfirmed), sources)
                 if run_parity else [])
    left += never_had
    unmatched_targets = model_sets.remaining(unmatched_targets, never_had)

    def prove(current_matches):
        rules = rules_lib.draft_rules(current_matches, unmatched_sources, drop_reasons, left)
        text = _text_of(rules, checkpoint, model, current_matches, unmatched_sources,
                        unmatched_targets, ambiguous=[], settled=[])
        table = MappingTable.from_text(text, origin=output or "<draft>")
        # Tensor data is read (into the model) only when parity will compare it.
        planner = pipeline.assign_into_model if run_parity else pipeline.plan
        conversion_plan = planner(checkpoint, table, model, options=options)
        problems = [problem.describe() for problem in conversion_plan.problems]
        parity = None
        if run_parity and not problems:
            # With the plan, a failing parity run carries the layer-by-layer comparison.
            try:
                parity = parity_lib.verify(checkpoint, model, verify, ema=options.ema,
                                           plan=conversion_plan)
            except MigrateError as error:
                # The draft is still written; why it is not proven is in its report.
                parity_errors.append((str(error), error.option))
        return rules, problems, parity

    if tied_unconfirmed and run_parity:
        # Nothing in the graph says the weights are tied: the outputs must.
        trial = [*matches, *tied_unconfirmed]
        saved_targets, unmatched_targets = unmatched_targets, _without(unmatched_targets,
                                                                       tied_unconfirmed)
        if by_value.score(prove(trial)[2]) == (0, 0):
            matches = trial
            for match in tied_unconfirmed:
                match.evidence.append("confirmed by value: the outputs match")
        else:
            unmatched_targets = saved_targets
    rules, problems, parity = prove(matches)
    undetermined = structure.undetermined_partitioned if structure is not None else set()
    if parity is not None and not parity.passed and undetermined:
        matches = _settle_partitions(matches, structure, prove, parity)
        rules, problems, parity = prove(matches)  # The model holds the last candidate's weights.
    if parity is not None and not parity.passed and ambiguous and resolve_ambiguous is not None:
        if resolve_ambiguous == BY_VALUE:
            def evaluate(choice):
                return prove(_apply_choice(matches, targets, choice))[2]

            choice = by_value.choose(ambiguous, evaluate, current=parity)
        else:
            choice = resolve_ambiguous(ambiguous, matches)
        if choice:
            matches = _apply_choice(matches, targets, choice)
        # The model holds the last candidate's weights: prove the chosen draft again.
        rules, problems, parity = prove(matches)
    settled, unsettled = [], ambiguous
    if parity is not None and parity.passed:
        settled, unsettled = ambiguous, []
        for match in matches:
            if not match.certain:
                match.certain = True
                match.evidence.append(SETTLED_BY_VALUE)
    if parity is None and run_parity:
        parity_note = (f"the legacy graph could not be compared: {parity_errors[-1][0]}"
                       if parity_errors else "the draft's plan has problems (listed above)")
        parity_option = parity_errors[-1][1] if parity_errors else None
    if never_had and not (parity is not None and parity.passed):
        # Nothing confirmed that the outputs do without them: unfilled, for the user.
        left = [item for item in left if all(item is not other for other in never_had)]
        unmatched_targets = [*unmatched_targets, *(item.target for item in never_had)]
        problems = [*problems, *(f"unfilled: {weight.path} {report_lib.shape_text(weight.shape)}: "
                                 f"no source variable fills this target weight"
                                 for item in never_had for weight in item.target.weights)]
    rules = rules_lib.draft_rules(matches, unmatched_sources, drop_reasons, left)
    unconfirmed = [match for match in tied_unconfirmed
                   if any(match.target is target for target in unmatched_targets)]
    text = _text_of(rules, checkpoint, model, matches, unmatched_sources, unmatched_targets,
                    ambiguous=unsettled, settled=settled, problems=problems, parity=parity,
                    parity_note=parity_note, unconfirmed_ties=unconfirmed)
    table = MappingTable.from_text(text, origin=output or "<draft>")
    if output is not None:
        atomic.write_file(output, text.encode("utf-8"))
    return SuggestReport(
        table=table, text=text, output=output,
        matches=[{"source": match.source.name, "target": match.target.name,
                  "layout": match.source.layout, "transforms": list(match.transforms),
                  "evidence": match.evidence, "certain": match.certain,
                  "decided_by": match.decided_by} for match in matches],
        dropped=[(variable.name, tuple(variable.shape)) for item in unmatched_sources
                 for variable in item.variables],
        unfilled=[(weight.path, tuple(weight.shape)) for item in unmatched_targets
                  for weight in item.weights],
        ambiguous=[[list(pair) for pair in group] for group in unsettled],
        settled=[[list(pair) for pair in group] for group in settled],
        plan_problems=problems, parity=parity, parity_note=parity_note,
        parity_failed=bool(run_parity and parity is None and parity_errors and not problems),
        parity_option=parity_option,
        left_as_built=[(weight.path, tuple(weight.shape), item.reason) for item in left
                       for weight in item.target.weights])


def _legacy_outputs(verify):
    """The legacy tensors `verify` compares (empty without settings)."""
    if verify is None:
        return ()
    pairs = [tensor for _, tensor in (verify.output_pairs or ())]
    return tuple(pairs or ([verify.output_tensor] if verify.output_tensor else []))


def _unique_items(items):
    """`items` without repeats (a split source's parts are one variable), in order."""
    seen, found = set(), []
    for item in items:
        if item.name not in seen:
            seen.add(item.name)
            found.append(item)
    return found


def _whole_splits(matches, unmatched_sources, unmatched_targets):
    """Keeps a split source's parts only when every part found its target.

    A fused product cut into parts is one variable: one `split` rule fills
    all its targets, or it is dropped whole (its parts left over, the
    targets they took free again).

    Returns:
        `(matches, unmatched_sources, unmatched_targets)`.
    """
    parts = {}
    for match in matches:
        if match.source.split:
            parts.setdefault(match.source.name, []).append(match)
    broken = {name for name, found in parts.items()
              if sorted(match.source.split[0] for match in found)
              != list(range(found[0].source.split[1]))}
    kept = [match for match in matches if match.source.name not in broken]
    freed = [match for match in matches if match.source.name in broken]
    return (kept, _unique_items(unmatched_sources + [match.source for match in freed]),
            unmatched_targets + [match.target for match in freed])


def _without(targets, matches):
    """`targets` less those the `matches` fill."""
    return [target for target in targets if all(target is not match.target for match in matches)]


def _settle_partitions(matches, structure, prove, parity):
    """Tries `unpartition_mod` on each partitioned source whose lookup the graph does not show.

    Without a `tf.nn.embedding_lookup` in the graph, nothing says whether the
    saved rows are in id order ('div') or interleaved ('mod'); the draft keeps
    them in order, and when parity fails each such source is tried reordered,
    kept when the outputs agree better.
    """
    best = by_value.score(parity)
    for index, match in enumerate(matches):
        if match.source.layout is not None or \
                match.source.name not in structure.undetermined_partitioned:
            continue
        step = f"unpartition_mod({structure.partitions[match.source.name]})"
        trial = list(matches)
        trial[index] = align_lib.Match(
            match.source, match.target, (step, *match.transforms),
            [*match.evidence, f"partition_strategy='mod' settled by value ({step} makes the "
                              f"outputs agree)"], match.certain, match.ambiguous_with)
        ranked = by_value.score(prove(trial)[2])
        if ranked < best:
            best, matches = ranked, trial
    return matches


def _apply_choice(matches, targets, choice):
    """Re-targets each chosen source layer's matches to the same items of its target layer."""
    by_layer = {}
    for item in targets:
        by_layer.setdefault(item.layer, []).append(item)
    current = {}
    for match in matches:
        current.setdefault(match.source.layer, match.target.layer)
    changed = []
    for match in matches:
        chosen = choice.get(match.source.layer)
        if chosen is None or chosen == current[match.source.layer]:
            changed.append(match)
            continue
        position = by_layer[current[match.source.layer]].index(match.target)
        target = by_layer[chosen][position]
        changed.append(align_lib.Match(match.source, target, match.transforms,
                                       [*match.evidence, "chosen by value comparison"], True))
    return changed


def _text_of(rules, checkpoint, model, matches, unmatched_sources, unmatched_targets, *,
             ambiguous, settled, problems=(), parity=None, parity_note="", unconfirmed_ties=()):
    header = [
        f"Drafted by `migrate suggest` from {checkpoint.prefix}",
        f"for the model {getattr(model, 'name', type(model).__name__)!r}: "
        f"{len(matches)} matches, {len(rules)} rules.",
        "Each rule's comment gives its evidence (shape, kind of weight, order, graph) and",
        "whether it was certain. Review the drops: they are variables the model has no place for.",
    ]
    counter_named = _counter_named(model)
    if counter_named:
        header += [
            f"Layer names given by Keras' process-wide counter: {', '.join(counter_named[:4])}"
            f"{', ...' if len(counter_named) > 4 else ''}; build the model in a fresh",
            "process or after keras.backend.clear_session() to use this table (or name them).",
        ]
    footer = []
    for group in ambiguous:
        footer.append(f"{draft_writer.AMBIGUOUS_MARK}: same weights in parallel branches, order "
                      f"chose: " + ", ".join(f"{source} -> {target}" for source, target in group))
    if settled:
        footer.append(f"settled by value (parity): {report_lib.settled_text(settled)}")
    if unmatched_targets:
        footer.append(f"{draft_writer.UNRESOLVED_MARK}: no source variable fills these target "
                      f"weights (beside dropped sources of the same shape):")
        dropped = [(variable.name, variable.shape) for item in unmatched_sources
                   for variable in item.variables]
        unfilled = [(weight.path, weight.shape) for item in unmatched_targets
                    for weight in item.weights]
        for source, target in report_lib.pair_entries(dropped, unfilled):
            if target is None:
                continue
            left = f"{source[0]} {report_lib.shape_text(source[1])}" if source else "(none)"
            footer.append(f"  {target[0]} {report_lib.shape_text(target[1])}  <-  {left}")
        footer.append("  (a weight the model sets itself, which no TF1 variable holds: a rule "
                      "`leave = 'PATH'` with its `reason` leaves it as the model built it)")
    for match in unconfirmed_ties:
        footer.append(f"{draft_writer.UNRESOLVED_MARK}: {match.target.name} "
                      f"{report_lib.shape_text(match.target.shape)} may be {match.source.name} "
                      f"transposed (tied weights); the graph does not show it and no passing "
                      f"parity run confirmed it: add `also = [{{target = '{match.target.name}', "
                      f"transform = ['transpose(1, 0)']}}]` to its rule if it is")
    for problem in problems:
        footer.append(f"{draft_writer.UNRESOLVED_MARK}: plan: {problem}")
    if parity is not None:
        footer.append(("parity " if parity.passed else f"{draft_writer.UNRESOLVED_MARK}: parity ")
                      + parity.summary())
    elif parity_note:
        footer.append(f"parity not run: {parity_note}")
    return draft_writer.toml_text(rules, header=header, footer=footer)


def _counter_named(model):
    """Returns the layers with weights whose names Keras' process-wide counter gave (`conv2d_1`).

    Such a name changes when the model is built again in the same process.
    A name like the counter's is the counter's only if the counter has gone
    that far (Keras 3 keeps it in `object_name_uids`); a layer its code named
    `gru_1` in a process that made no GRU before is not.
    """
    counters = _name_counters(model)
    found = []
    stack = list(getattr(model, "layers", ()))
    while stack:
        layer = stack.pop(0)
        stack.extend(getattr(layer, "layers", ()))
        # Keras' own snake case of the class name (Conv2D -> conv2d).
        snake = re.sub(r"(.)([A-Z][a-z]+)", r"\1_\2", type(layer).__name__)
        snake = re.sub(r"([a-z])([A-Z])", r"\1_\2", snake).lower()
        number = re.fullmatch(re.escape(snake) + r"_([1-9]\d*)", layer.name)
        if not layer.weights or number is None:
            continue
        if counters is None or counters.get(snake, 0) > int(number.group(1)):
            found.append(layer.name)
    return found


def _name_counters(model):
    """Keras 3's per-prefix counts of automatic names, or None where they cannot be read."""
    if not target_model.is_keras_3(model):
        return None
    try:
        from keras.src.backend.common import global_state
    except ImportError:
        return None
    counters = global_state.get_global_attribute("object_name_uids")
    return None if counters is None else dict(counters)
