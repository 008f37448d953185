"""What a draft aligns: source items (variables, recognised cells) and target items."""

import dataclasses
import re

from migrate.suggest import attention_roles


# The kind of weight a TF1 part name or a Keras weight name says it is.
WEIGHT_KINDS = {
    "weights": "kernel", "kernel": "kernel", "biases": "bias", "bias": "bias",
    "beta": "beta", "gamma": "gamma", "moving_mean": "moving_mean",
    "moving_variance": "moving_variance", "embeddings": "embeddings",
    "depthwise_weights": "depthwise_kernel", "depthwise_kernel": "depthwise_kernel",
    "pointwise_weights": "pointwise_kernel", "pointwise_kernel": "pointwise_kernel",
}
# Order of the kinds inside one layer, so that layers that create their
# weights in another order (slim beta before gamma, Keras gamma first) align.
KIND_ORDER = ("depthwise_kernel", "pointwise_kernel", "kernel", "embeddings", "gamma", "beta",
              "bias", "moving_mean", "moving_variance")
_STATISTICS = ("moving_mean", "moving_variance")
_EMBEDDING_NAME = re.compile(r"(^|_)embeddings?$")
_DIGITS = re.compile(r"(\d+)")
# Keras layers whose weight name does not say its kind: Keras 3's depthwise
# convolutions call their kernel `kernel` (tf_keras and TF1 say depthwise).
KINDS_BY_LAYER_CLASS = {("DepthwiseConv2D", "kernel"): "depthwise_kernel",
                        ("DepthwiseConv1D", "kernel"): "depthwise_kernel"}

# Recognised TF1 cells and blocks: the layout each becomes.
LSTM = "lstm"
LSTM_LEGACY = "lstm_legacy_names"
LSTM_LINEAR = "lstm_linear_names"
CUDNN_LSTM = "cudnn_compatible_lstm"
GRU = "gru"
GRU_LEGACY = "gru_legacy_names"
ATTENTION = "bert_attention"
SIMPLE_RNN = "simple_rnn"
SIMPLE_RNN_LEGACY = "simple_rnn_legacy_names"
SIMPLE_RNN_LINEAR = "simple_rnn_linear_names"
VOCABULARY_OOV_ROLL = "vocabulary_oov_roll"
_SIMPLE_RNN_SCOPE = re.compile(r"(^|/)basic_rnn_cell$")
_SIMPLE_RNN_LINEAR_SCOPE = re.compile(r"(^|/)BasicRNNCell$")
_LSTM_LINEAR_SCOPE = re.compile(r"(^|/)BasicLSTMCell$")
_LINEAR_PARTS = ("Linear/Matrix", "Linear/Bias")
_LSTM_SCOPES = re.compile(r"(^|/)(basic_lstm_cell|lstm_cell|lstm_block_cell|lstm_fused_cell)$")
_PEEPHOLE_PARTS = ("w_f_diag", "w_i_diag", "w_o_diag")
_CUDNN_SCOPE = re.compile(r"(^|/)cudnn_compatible_lstm_cell$")
_GRU_SCOPE = re.compile(r"(^|/)gru_cell$")
_GRU_PARTS = {frozenset({"gates/kernel", "gates/bias", "candidate/kernel", "candidate/bias"}): GRU,
              frozenset({"gates/weights", "gates/biases", "candidate/weights",
                         "candidate/biases"}): GRU_LEGACY}
_ATTENTION_PARTS = frozenset(f"{part}/{leaf}" for part in
                             ("self/query", "self/key", "self/value", "output/dense")
                             for leaf in ("kernel", "bias"))
_KERAS_ATTENTION_PARTS = frozenset(f"{part}/{leaf}" for part in
                                   ("query", "key", "value", "attention_output")
                                   for leaf in ("kernel", "bias"))
_KERAS_RNN_PARTS = frozenset({"kernel", "recurrent_kernel", "bias"})
# Layouts by the family a Keras target must belong to.
_ROLE_ORDER = {role: index + 1 for index, role in enumerate(attention_roles.ROLES)}
RNN_LAYOUTS = (LSTM, LSTM_LEGACY, LSTM_LINEAR, CUDNN_LSTM, GRU, GRU_LEGACY, SIMPLE_RNN, SIMPLE_RNN_LEGACY,
               SIMPLE_RNN_LINEAR)


@dataclasses.dataclass
class SourceItem:
    """A TF1 variable, or a recognised cell (a layout scope with its variables).

    Attributes:
        name: the variable's checkpoint key, or the cell's scope.
        layer: the scope that groups it with its siblings (ambiguity is judged per layer).
        kind: a `WEIGHT_KINDS` value, a layout name, or None when the name says nothing.
        shape: the variable's shape (for a cell: None; see `parts`).
        dtype: dtype name.
        variables: the `SourceVariable`s it covers.
        layout: the layout name for a cell, else None.
        parts: for a cell, part -> shape.
        transforms: transforms the graph requires before any reshape (unpartition).
        note: evidence from the graph, for the rule's comment.
        position: index in creation order.
        parameters: the layout's parameters the graph gave (`oov_buckets`).
        level: its dataflow level in the legacy graph (`dataflow.Use.level`),
            or None when the graph does not show its use.
        split: `(index, count)` for one of the parts a `tf.split` cuts its
            product into (a fused query/key/value kernel), else ().
        reshaped: the graph reshapes it between the variable and its use.
        graph_kind: its kind is what the graph does with it, not its name.
        on_path: its use reaches the compared outputs (or they are not known).
        flow: its layer's dataflow level, set by `dataflow_ordered`.
        role: the attention projection the graph shows it in (`query`, `key`,
            `value`, `output`: `dataflow.Use.role`), or None.
    """

    name: str
    layer: str
    kind: str | None
    shape: tuple | None
    dtype: str
    variables: tuple
    layout: str | None = None
    parts: dict = dataclasses.field(default_factory=dict)
    transforms: tuple = ()
    note: str = ""
    position: int = 0
    parameters: dict = dataclasses.field(default_factory=dict)
    level: int | None = None
    split: tuple = ()
    reshaped: bool = False
    graph_kind: bool = False
    on_path: bool = True
    flow: int | None = None
    role: str | None = None


@dataclasses.dataclass
class TargetItem:
    """A Keras weight, or a layer whose weights one layout rule fills together.

    Attributes:
        name: the weight path, or the layer's path prefix for a layout target.
        layer: the path prefix of its layer.
        kind: a `WEIGHT_KINDS` value, "rnn_cell", "attention" or the weight's own name.
        shape: the weight's shape (None for a layer).
        dtype: dtype name.
        parts: for a layer, part -> shape.
        weights: the `TargetWeight`s it covers.
        layer_class: the class name of the Keras layer that owns the weight
            (`Normalization`, `DepthwiseConv2D`), or None when not known.
        level: its dataflow level in the model's traced call, or None.
        reshaped: the model reshapes it before its use (or uses it in an einsum).
        flow: its layer's dataflow level, set by `dataflow_ordered` (None
            when not ordered by dataflow).
        role: the attention projection the model's traced call shows it in,
            or None.
    """

    name: str
    layer: str
    kind: str
    shape: tuple | None
    dtype: str
    parts: dict = dataclasses.field(default_factory=dict)
    weights: tuple = ()
    layer_class: str | None = None
    level: int | None = None
    reshaped: bool = False
    flow: int | None = None
    role: str | None = None


def source_kind(part):
    """Returns the kind of weight a TF1 variable's last name component says, or None.

    >>> source_kind("weights"), source_kind("word_embeddings"), source_kind("softmax_w")
    ('kernel', 'embeddings', None)
    """
    if part in WEIGHT_KINDS:
        return WEIGHT_KINDS[part]
    return "embeddings" if _EMBEDDING_NAME.search(part) else None


def source_items(variables, order, structure=None):
    """Groups kept source variables into items, in creation order.

    Args:
        variables: the kept `SourceVariable`s.
        order: checkpoint keys in creation order (unknown keys go last, by name).
        structure: a `tf1_structure.GraphStructure`, or None.

    Returns:
        A list of `SourceItem`s.
    """
    rank = {name: index for index, name in enumerate(order)}
    variables = sorted(variables, key=lambda v: (rank.get(v.name, len(rank)),
                                                 numbered_order(v.name)))
    by_name = {variable.name: variable for variable in variables}
    claimed, cells = set(), {}
    for variable in variables:
        cell = _cell_of(variable.name, by_name,
                        structure.uses if structure is not None else {})
        if cell is not None:
            scope, layout, parts = cell
            cells.setdefault(scope, (layout, parts))
            claimed.update(f"{scope}/{part}" for part in parts)
    items, emitted = [], set()
    for variable in variables:
        scope, _, part = variable.name.rpartition("/")
        if variable.name in claimed:
            cell_scope = next(s for s in cells if variable.name.startswith(s + "/")
                              and variable.name[len(s) + 1:] in cells[s][1])
            if cell_scope in emitted:
                continue
            emitted.add(cell_scope)
            layout, parts = cells[cell_scope]
            members = tuple(by_name[f"{cell_scope}/{p}"] for p in parts)
            items.append(SourceItem(
                name=cell_scope, layer=cell_scope, kind=layout, shape=None,
                dtype=members[0].dtype, variables=members, layout=layout,
                parts={p: by_name[f"{cell_scope}/{p}"].shape for p in parts},
                position=rank.get(variable.name, len(rank))))
            continue
        if structure is not None and variable.name in structure.vocabulary_oov:
            # Rows looked up by vocabulary id, the OOV buckets last: rolled for StringLookup.
            items.append(SourceItem(
                name=scope, layer=scope, kind=VOCABULARY_OOV_ROLL, shape=tuple(variable.shape),
                dtype=variable.dtype, variables=(variable,), layout=VOCABULARY_OOV_ROLL,
                parts={part: tuple(variable.shape)},
                parameters={"oov_buckets": structure.vocabulary_oov[variable.name]},
                position=rank.get(variable.name, len(rank))))
            continue
        kind = source_kind(part)
        use = structure.uses.get(variable.name) if structure is not None else None
        # What the graph does with it wins over its name, but for statistics (named
        # reliably by the layer that keeps them, and combined among themselves first).
        graph_kind = use is not None and use.kind is not None and kind not in _STATISTICS
        if graph_kind:
            kind = use.kind
        transforms, note = (), ""
        if structure is not None and variable.name in structure.partitions:
            count = structure.partitions[variable.name]
            if variable.name in structure.mod_partitioned:
                transforms = (f"unpartition_mod({count})",)
                note = (f"saved from {count} partitions, looked up with partition_strategy='mod' "
                        f"(a FloorMod feeds the lookup's DynamicPartition)")
            elif variable.name in structure.undetermined_partitioned:
                note = (f"saved from {count} partitions; no lookup in the graph shows the "
                        f"partition_strategy (rows kept in order unless values say 'mod')")
            else:
                note = (f"saved from {count} partitions, looked up with partition_strategy='div' "
                        f"(rows kept in order)")
        item = SourceItem(
            name=variable.name, layer=scope if kind else variable.name, kind=kind,
            shape=tuple(variable.shape), dtype=variable.dtype, variables=(variable,),
            transforms=transforms, note=note, position=rank.get(variable.name, len(rank)),
            level=None if use is None else use.level, reshaped=use is not None and use.reshaped,
            graph_kind=graph_kind, on_path=use is None or use.on_path,
            role=use.role if graph_kind else None)
        if use is not None and use.split > 1 and item.shape and item.shape[-1] % use.split == 0:
            # The product is cut into parts: one item per part, each 1/count of the last axis
            # (a fused query/key/value projection: each part's role is where the graph sends it).
            part_shape = (*item.shape[:-1], item.shape[-1] // use.split)
            roles = use.part_roles if graph_kind and use.part_roles else (None,) * use.split
            items.extend(dataclasses.replace(item, shape=part_shape, split=(index, use.split),
                                             role=roles[index])
                         for index in range(use.split))
        else:
            items.append(item)
    if structure is not None and structure.uses:
        for item in items:
            if item.layout is not None:
                levels = [structure.uses[variable.name].level for variable in item.variables
                          if variable.name in structure.uses]
                item.level = min(levels) if levels else None
    return canonical_layer_order(items)


def numbered_order(name):
    """A sort key that puts TF1's numbered names in the order they were made.

    Without a graph, names are all there is to order by; TF1 numbers a
    scope's repeats (`conv2d`, `conv2d_1`, ..., `conv2d_10`), which sorted as
    text would put `conv2d_10` before `conv2d_2`.

    >>> sorted(["conv2d_10/bias", "conv2d_2/bias", "conv2d/bias"], key=numbered_order)
    ['conv2d/bias', 'conv2d_2/bias', 'conv2d_10/bias']
    """
    return tuple(tuple(int(piece) if index % 2 else piece
                       for index, piece in enumerate(_DIGITS.split(part)))
                 for part in name.split("/"))


def _cell_of(name, by_name, uses=None):
    """Returns (scope, layout, parts) when `name` belongs to a recognised cell, else None.

    Cells are known by their scope's name, or (`uses` from the graph) by what
    the graph does: a kernel and bias used inside a while loop are a cell
    whatever its scope is called (`multi_rnn_cell/cell_0/cell_1`), an LSTM
    when the product is split into four gates, else a basic RNN cell.
    """
    pieces = name.split("/")
    for depth in range(1, min(4, len(pieces))):
        scope = "/".join(pieces[:-depth])
        under = {other[len(scope) + 1:] for other in by_name if other.startswith(scope + "/")}
        # Peephole vectors make a scope an LSTM cell whatever its name (LSTMCell(name=...)).
        peepholes = tuple(part for part in _PEEPHOLE_PARTS if part in under)
        if depth == 1 and (_LSTM_SCOPES.search(scope) or peepholes):
            for kernel, bias, layout in (("kernel", "bias", LSTM),
                                         ("weights", "biases", LSTM_LEGACY)):
                if {kernel, bias} <= under:
                    # The draft claims them, so its plan says in one line what Keras lacks.
                    return scope, layout, (kernel, bias, *peepholes)
        if depth == 1 and _CUDNN_SCOPE.search(scope) and {"kernel", "bias"} <= under:
            return scope, CUDNN_LSTM, ("kernel", "bias")
        loop_cell = _loop_cell(scope, under, uses) if depth == 1 and uses else None
        if loop_cell is not None:
            return loop_cell
        if depth == 1 and _SIMPLE_RNN_SCOPE.search(scope):
            for kernel, bias, layout in (("kernel", "bias", SIMPLE_RNN),
                                         ("weights", "biases", SIMPLE_RNN_LEGACY)):
                if {kernel, bias} <= under:
                    return scope, layout, (kernel, bias)
        if depth == 2 and set(_LINEAR_PARTS) <= under:
            # TF 0.x cells: `_linear` kept the fused kernel under `<Cell>/Linear`.
            if _SIMPLE_RNN_LINEAR_SCOPE.search(scope):
                return scope, SIMPLE_RNN_LINEAR, _LINEAR_PARTS
            if _LSTM_LINEAR_SCOPE.search(scope):
                return scope, LSTM_LINEAR, _LINEAR_PARTS
        if depth == 2 and _GRU_SCOPE.search(scope):
            for parts, layout in _GRU_PARTS.items():
                if parts <= under:
                    return scope, layout, tuple(sorted(parts))
        # The parts say it, whatever the block's scope is called (`attention_1`), unless
        # the graph shows a part playing another's role (`self/key` holding the values).
        if depth == 3 and _ATTENTION_PARTS <= under and not _roles_contradict(scope, uses):
            return scope, ATTENTION, tuple(sorted(_ATTENTION_PARTS))
    return None


def _roles_contradict(scope, uses):
    """Whether the graph shows a BERT attention block's projection in another's role."""
    for part, role in zip(("self/query", "self/key", "self/value", "output/dense"),
                          attention_roles.ROLES):
        use = (uses or {}).get(f"{scope}/{part}/kernel")
        if use is not None and use.role is not None and use.role != role:
            return True
    return False


def _loop_cell(scope, under, uses):
    """(scope, layout, parts) of a kernel and bias the graph uses in a loop, else None."""
    own = scope.rpartition("/")[2]
    if _GRU_SCOPE.search(scope) or own in ("gates", "candidate"):
        return None  # A GRU's two products, recognised as one cell by its scope.
    for kernel, bias, layouts in (("kernel", "bias", (LSTM, SIMPLE_RNN)),
                                  ("weights", "biases", (LSTM_LEGACY, SIMPLE_RNN_LEGACY))):
        use = uses.get(f"{scope}/{kernel}")
        if under == {kernel, bias} and use is not None and use.loop:
            return scope, layouts[0] if use.split == 4 else layouts[1], (kernel, bias)
    return None


def canonical_layer_order(items):
    """Orders the items of each layer by kind, keeping the layers in creation order.

    Works for source and target items alike (sorting is stable: items of one
    kind keep their order).
    """
    first_seen, groups = {}, {}
    for item in items:
        first_seen.setdefault(item.layer, len(first_seen))
        groups.setdefault(item.layer, []).append(item)
    ordered = []
    for layer in sorted(groups, key=first_seen.get):
        ordered.extend(sorted(groups[layer], key=lambda item: (
            KIND_ORDER.index(item.kind) if item.kind in KIND_ORDER else len(KIND_ORDER))))
    return ordered


def target_items(weights, kept, uses=None, group_attention=True, layer_classes=None):
    """Groups the target weights into items, in the order the model created them.

    A weight's kind is its name's (`kernel`, `gamma`, ...), or its layer
    class's where the name does not say it (`KINDS_BY_LAYER_CLASS`).

    Args:
        weights: `TargetWeight`s in creation order.
        kept: a predicate on a `TargetWeight`: whether the conversion fills it.
        uses: `{weight path: dataflow.Use}` of the model's traced call, or None.
        group_attention: MultiHeadAttention layers become one item (for a
            source's attention block); False leaves their weights apart (for
            projections the graph shows one by one, or a fused one split).
        layer_classes: `{weight path: class name of the layer owning it}`
            (`layer_classes(model)`), or None.

    Returns:
        A list of `TargetItem`s: RNN cells and MultiHeadAttention layers as
        one item each, every other weight on its own.
    """
    weights = [weight for weight in weights if kept(weight)]
    by_prefix = {}
    for weight in weights:
        prefix, _, leaf = weight.path.rpartition("/")
        by_prefix.setdefault(prefix, {})[leaf] = weight
    groups = {}
    for prefix, leaves in by_prefix.items():
        if set(leaves) == _KERAS_RNN_PARTS:
            groups[prefix] = ("rnn_cell", {leaf: leaves[leaf] for leaf in sorted(leaves)})
    attention = {}
    for weight in weights:
        pieces = weight.path.split("/")
        if len(pieces) >= 3:
            attention.setdefault("/".join(pieces[:-2]), {})["/".join(pieces[-2:])] = weight
    for prefix, parts in attention.items():
        if group_attention and set(parts) == _KERAS_ATTENTION_PARTS:
            groups[prefix] = ("attention", dict(sorted(parts.items())))
    items, emitted = [], set()
    for weight in weights:
        group = next((prefix for prefix in groups if weight.path.startswith(prefix + "/")
                      and weight.path[len(prefix) + 1:] in groups[prefix][1]), None)
        if group is not None:
            if group not in emitted:
                emitted.add(group)
                kind, parts = groups[group]
                levels = [uses[member.path].level for member in parts.values()
                          if uses and member.path in uses]
                items.append(TargetItem(
                    name=group, layer=group, kind=kind, shape=None, dtype=weight.dtype,
                    parts={part: member.shape for part, member in parts.items()},
                    weights=tuple(parts.values()), level=min(levels) if levels else None))
            continue
        layer, _, leaf = weight.path.rpartition("/")
        use = uses.get(weight.path) if uses else None
        layer_class = (layer_classes or {}).get(weight.path)
        kind = KINDS_BY_LAYER_CLASS.get((layer_class, leaf), WEIGHT_KINDS.get(leaf, leaf))
        items.append(TargetItem(name=weight.path, layer=layer, kind=kind,
                                shape=tuple(weight.shape), dtype=weight.dtype, weights=(weight,),
                                layer_class=layer_class,
                                level=None if use is None else use.level,
                                reshaped=use is not None and (use.reshaped or use.op == "Einsum"),
                                role=None if use is None else use.role))
    return canonical_layer_order(items)


def layer_classes(model, path_of):
    """Returns `{weight path: class name of the innermost layer that owns the weight}`.

    Args:
        model: a built Keras model (Keras 3 or tf_keras).
        path_of: `variable -> weight path` (`planning.target.weight_path`).
    """
    flatten = getattr(model, "_flatten_layers", None)
    # Parents come before their sublayers: the innermost owner is written last.
    layers = list(flatten(include_self=True, recursive=True)) if flatten else [model]
    found = {}
    for layer in layers:
        for variable in getattr(layer, "weights", ()):
            found[path_of(variable)] = type(layer).__name__
    return found


def dataflow_ordered(items):
    """Orders items by dataflow level; kind, shape and creation order break ties.

    Sources and targets so ordered align as the data reaches them, whatever
    order their code created them in. A layer's weights used one level after
    another take the first one's level (a bias is added one step after its
    kernel multiplies, a batch norm's statistics meet the data apart), so
    they stay together, in `KIND_ORDER`. A scope holding two weights of one
    kind (`model/wte`, `model/wpe`) is no layer: each keeps its own level.
    Items whose level is unknown keep their place after the item before them.
    An attention block's projections, at one level, go query, key, value.
    Sets each item's `flow` to the level it is ordered by.
    """
    layers = {}
    for item in items:
        layers.setdefault(item.layer, []).append(item)
    for members in layers.values():
        kinds = [item.kind for item in members
                 if not getattr(item, "split", ()) or item.split[0] == 0]
        if len(set(kinds)) != len(kinds):
            for item in members:
                item.flow = item.level
            continue
        start, previous = None, None
        for item in sorted((item for item in members if item.level is not None),
                           key=lambda item: item.level):
            if previous is None or item.level - previous > 1:
                start = item.level
            item.flow, previous = start, item.level
        for item in members:
            if item.level is None:
                item.flow = None
    keyed, last = [], 0
    for index, item in enumerate(items):
        last = item.flow if item.flow is not None else last
        keyed.append(((last, KIND_ORDER.index(item.kind) if item.kind in KIND_ORDER
                       else len(KIND_ORDER), _ROLE_ORDER.get(item.role, 0), str(item.shape),
                       index), item))
    return [item for _, item in sorted(keyed, key=lambda pair: pair[0])]


def creation_ordered(model):
    """Returns the model's weights in the order they were created.

    Keras 3 lists a functional model's weights by graph depth, which
    interleaves parallel branches; the TensorFlow variables behind them carry
    a process-wide creation counter (`_unique_id`), which is the order the
    model's code built its layers in. Without it, `model.weights` order is used.

    Args:
        model: a built Keras model.

    Returns:
        The model's variables, oldest first.
    """
    weights = list(model.weights)
    keys = []
    for position, variable in enumerate(weights):
        key = None
        for candidate in (getattr(variable, "_value", None), variable):
            unique = getattr(candidate, "_unique_id", None)
            if isinstance(unique, str) and unique.rpartition("_")[2].isdigit():
                key = int(unique.rpartition("_")[2])
                break
        keys.append(key)
    if any(key is None for key in keys) or len(set(keys)) != len(keys):
        return weights
    return [variable for _, variable in sorted(zip(keys, weights), key=lambda pair: pair[0])]
