"""A frozen GraphDef (`convert_variables_to_constants`, `optimize_for_inference`): its weights.

Freezing turns every variable into a `Const` node of the same name, still
read through its `NAME/read` Identity. `optimize_for_inference` removes those
reads and folds BatchNorm into the convolution before it (new constants
`CONV_weights` and `CONV_bn_offset`); there a weight is known by where it is
used: the weight input of a MatMul, Conv2D, DepthwiseConv2dNative, BiasAdd,
FusedBatchNorm, of the Add/Mul arithmetic of a BatchNorm, the table of an
embedding Gather, or a bias (a vector) added with a plain `Add` to a product with
a weight (`tf.matmul(x, W) + b`, the raw-op style). Every other constant is listed with
the reason it is not a weight.
"""

import dataclasses
import re

import numpy as np

from migrate import files
from migrate.errors import CheckpointError
from migrate.errors import reason

KIND_FROZEN_GRAPH = "frozen GraphDef"
# Weight inputs of ops, by input position.
_WEIGHT_INPUTS = {
    "MatMul": (0, 1),
    "BatchMatMulV2": (1,),
    "Conv2D": (1,),
    "Conv3D": (1,),
    "Conv2DBackpropInput": (1,),
    "DepthwiseConv2dNative": (1,),
    "BiasAdd": (1,),
    "FusedBatchNorm": (1, 2, 3, 4),
    "FusedBatchNormV2": (1, 2, 3, 4),
    "FusedBatchNormV3": (1, 2, 3, 4),
    "Gather": (0,),
    "GatherV2": (0,),
    "ResourceGather": (0,),
}
_ARITHMETIC_OPS = frozenset({"Add", "AddV2", "Mul", "Sub", "Rsqrt"})
_ADD_OPS = frozenset({"Add", "AddV2"})
# Ops whose output is a product with a weight: what `+ b` adds a bias to.
_PRODUCT_OPS = frozenset({"MatMul", "BatchMatMulV2", "Conv2D", "Conv3D", "Conv2DBackpropInput",
                          "DepthwiseConv2dNative"})
# The scopes of a BatchNorm written as arithmetic (fused=False, tf.nn.batch_normalization).
_BATCH_NORM_SCOPE = re.compile(r"(^|/)(batchnorm|BatchNorm|batch_normalization|bn)(_\d+)?(/|$)")
# Ops a value passes through unchanged on its way to a weight input (into a while loop).
_PASS_THROUGH_OPS = frozenset({"Identity", "Enter", "Switch", "Merge"})
# A frozen reference variable keeps its `NAME/read` Identity; a frozen resource
# variable's ReadVariableOp becomes the Identity `NAME/Read/ReadVariableOp`.
_READ_SUFFIXES = ("/read", "/Read/ReadVariableOp")
# Control flow v2 and function calls: a weight used inside the loop, branch or
# function body enters as one of the op's inputs.
_FUNCTIONAL_OPS = frozenset({"While", "StatelessWhile", "If", "StatelessIf", "PartitionedCall",
                             "StatefulPartitionedCall"})
_FOLDED_SUFFIXES = ("_bn_offset",)
_FLOAT_DTYPES = frozenset({"float16", "bfloat16", "float32", "float64"})


@dataclasses.dataclass(frozen=True)
class Constant:
    """One `Const` node: its name, shape, dtype, whether it is a weight, and why."""

    name: str
    shape: tuple
    dtype: str
    is_weight: bool
    reason: str


@dataclasses.dataclass(frozen=True)
class FrozenGraph:
    """A frozen GraphDef opened for reading.

    Attributes:
        path: the `.pb` or `.pbtxt` file.
        graph_def: the parsed GraphDef.
        constants: every `Const` node as a `Constant`, by name.
        folded: True when `optimize_for_inference` folded BatchNorm into the
            convolutions (the Keras model must be the folded one).

    Example:

        frozen = open_frozen_graph("frozen_inference_graph.pb")
        weights = [constant.name for constant in frozen.constants.values() if constant.is_weight]
    """

    path: str
    graph_def: object
    constants: dict
    folded: bool
    nodes: dict = dataclasses.field(repr=False, default_factory=dict)

    kind = KIND_FROZEN_GRAPH

    @property
    def description(self):
        folded = " (BatchNorm folded by optimize_for_inference)" if self.folded else ""
        return f"{KIND_FROZEN_GRAPH} {self.path}{folded}"

    @property
    def weights(self):
        return {name: constant for name, constant in self.constants.items() if constant.is_weight}

    def files(self):
        return [self.path]

    def get_tensor(self, name):
        """Returns the value of the `Const` node `name` as a NumPy array (as TensorFlow's
        checkpoint reader is asked, so `LegacyCheckpoint.read` serves both)."""
        from tensorflow.python.framework import dtypes
        from tensorflow.python.framework import tensor_util

        tensor = self.nodes[name].attr["value"].tensor
        if tensor.tensor_content:
            # A view of the one copy the protocol buffer hands out (MakeNdarray
            # would copy it again: a VGG fc6 kernel is 411 MB).
            dtype = dtypes.as_dtype(tensor.dtype).as_numpy_dtype
            return np.frombuffer(tensor.tensor_content, dtype=dtype).reshape(
                self.constants[name].shape)
        return np.asarray(tensor_util.MakeNdarray(tensor))

    def import_graph(self):
        """Returns `(graph, None)`: the GraphDef imported into a new `tf.Graph` (names unchanged),
        and no saver (as `SavedModelSource.import_graph` returns one): nothing to restore."""
        import tensorflow as tf

        graph = tf.Graph()
        try:
            with graph.as_default():
                tf.compat.v1.import_graph_def(self.graph_def, name="")
        except Exception as error:  # TensorFlow's many import errors, translated.
            raise CheckpointError(
                f"Cannot import the graph in {self.path}: {reason(error)}. Expected a GraphDef "
                f"TensorFlow can import. Received: checkpoint={self.path!r}") from None
        return graph, None


def open_frozen_graph(path):
    """Parses a frozen GraphDef and decides which of its constants are weights.

    Args:
        path: a binary (`.pb`) or text (`.pbtxt`) GraphDef.

    Returns:
        A `FrozenGraph`.

    Raises:
        CheckpointError: the file is not a GraphDef, or it holds no weight constants.
    """
    from google.protobuf import text_format
    from tensorflow.core.framework import graph_pb2

    graph_def = graph_pb2.GraphDef()
    try:
        data = files.read_bytes(path)
        if path.endswith(".pbtxt"):
            text_format.Parse(data.decode("utf-8"), graph_def)
        else:
            graph_def.ParseFromString(data)
        del data  # The file's bytes, as large as the weights: parsed, no longer needed.
    except Exception as error:  # DecodeError, ParseError, UnicodeDecodeError, I/O errors.
        raise CheckpointError(
            f"{path} is not a GraphDef: {reason(error)}. Expected a frozen graph written by "
            f"tf.io.write_graph or convert_variables_to_constants. Received: checkpoint={path!r}"
        ) from None
    if not graph_def.node or not all(node.op for node in graph_def.node):
        raise CheckpointError(
            f"{path} is not a GraphDef: it parses to {len(graph_def.node)} node(s) without "
            f"ops. Expected a frozen graph written by tf.io.write_graph or "
            f"convert_variables_to_constants. Received: checkpoint={path!r}")
    constants = classify_constants(graph_def)
    if not any(constant.is_weight for constant in constants.values()):
        variables = sum(node.op in ("VariableV2", "VarHandleOp", "Variable")
                        for node in graph_def.node)
        found = (f"{variables} variable op(s), so it is not frozen (its weights are in a "
                 f"checkpoint)" if variables else f"{len(constants)} constant(s), none a weight")
        raise CheckpointError(
            f"The GraphDef {path} holds no weight constants: {found}. Expected a frozen graph "
            f"(convert_variables_to_constants). Received: checkpoint={path!r}")
    folded = any(constant.is_weight and constant.name.endswith(_FOLDED_SUFFIXES)
                 for constant in constants.values())
    return FrozenGraph(path=path, graph_def=graph_def, constants=constants, folded=folded,
                       nodes={node.name: node for node in graph_def.node if node.op == "Const"})


def classify_constants(graph_def):
    """Returns every `Const` node of a GraphDef as a `Constant`, saying whether it is a weight.

    Example:

        constants = classify_constants(graph_def)
        print(constants["conv1/weights"].reason)  # read through conv1/weights/read ...
    """
    nodes = {node.name: node for node in graph_def.node}
    consumers = {}
    for node in graph_def.node:
        for position, text in enumerate(node.input):
            if not text.startswith("^"):
                consumers.setdefault(text.split(":")[0], []).append((node, position))
    constants = {}
    for node in graph_def.node:
        if node.op != "Const":
            continue
        shape, dtype = _shape_and_dtype(node)
        is_weight, why = _weight_decision(node, dtype, consumers, nodes)
        constants[node.name] = Constant(node.name, shape, dtype, is_weight, why)
    return constants


def _shape_and_dtype(node):
    from tensorflow.python.framework import dtypes

    tensor = node.attr["value"].tensor
    shape = tuple(int(dimension.size) for dimension in tensor.tensor_shape.dim)
    try:
        dtype = dtypes.as_dtype(node.attr["dtype"].type).name
    except TypeError:
        dtype = "unknown"
    return shape, dtype


def _weight_decision(node, dtype, consumers, nodes):
    if dtype not in _FLOAT_DTYPES:
        return False, f"of dtype {dtype} (shapes, indices, flags), not a weight"
    if not _consumers(node.name, consumers):
        return False, "used by no op"
    reads = {node.name + suffix for suffix in _READ_SUFFIXES}
    for consumer, _ in consumers.get(node.name, ()):
        if consumer.name in reads and consumer.op == "Identity":
            return True, (f"read through {consumer.name}: a variable frozen by "
                          f"convert_variables_to_constants")
    if node.name.endswith(_FOLDED_SUFFIXES):
        return True, ("the offset of a BatchNorm folded into its convolution "
                      "(optimize_for_inference)")
    for consumer, position in _consumers(node.name, consumers):
        if position in _WEIGHT_INPUTS.get(consumer.op, ()):
            other = _other_inputs_constant(consumer, position, nodes)
            if consumer.op == "MatMul" and other:
                continue
            return True, f"input {position} of {consumer.op} {consumer.name}"
        rank = len(node.attr["value"].tensor.tensor_shape.dim)
        if (consumer.op in _ARITHMETIC_OPS and _BATCH_NORM_SCOPE.search(consumer.name)
                and rank):  # A scalar there is the epsilon.
            return True, f"an operand of BatchNorm arithmetic {consumer.op} {consumer.name}"
        # A bias is a vector; a table added to a product (positions, a mask) is not.
        product = _weight_product(consumer, position, nodes) if rank == 1 else None
        if consumer.op in _ADD_OPS and product is not None:
            return True, (f"a bias: added by {consumer.op} {consumer.name} to {product.op} "
                          f"{product.name}, a product with a weight")
        if consumer.op in _FUNCTIONAL_OPS and rank:
            return True, (f"a tensor entering {consumer.op} {consumer.name} (a loop, branch or "
                          f"function body), as frozen variables do")
    used = sorted({f"{consumer.op} {consumer.name}" for consumer, _ in
                   _consumers(node.name, consumers)})
    return False, (f"not a weight input: used by {', '.join(used[:2])}"
                   f"{' ...' if len(used) > 2 else ''}")


def _consumers(name, consumers):
    """The ops that use `name`'s value, looking through Identity and while-loop Enter ops."""
    found, stack, seen = [], [name], set()
    while stack:
        current = stack.pop()
        if current in seen:
            continue
        seen.add(current)
        for consumer, position in consumers.get(current, ()):
            if consumer.op in _PASS_THROUGH_OPS:
                stack.append(consumer.name)
            else:
                found.append((consumer, position))
    return found


def _producer(text, nodes):
    """The node whose output `text` names, looking back through Identity ops."""
    node = nodes.get(text.split(":")[0].lstrip("^"))
    while node is not None and node.op == "Identity" and node.input:
        node = nodes.get(node.input[0].split(":")[0])
    return node


def _weight_product(consumer, position, nodes):
    """Returns the product with a weight (`MatMul`, `Conv2D`, ...) that `consumer` adds the
    constant at input `position` to, or None."""
    others = [text for index, text in enumerate(consumer.input)
              if index != position and not text.startswith("^")]
    if len(others) != 1:
        return None
    product = _producer(others[0], nodes)
    if product is None or product.op not in _PRODUCT_OPS:
        return None
    weights = [_producer(product.input[index], nodes)
               for index in _WEIGHT_INPUTS[product.op] if index < len(product.input)]
    if any(weight is not None and weight.op == "Const" for weight in weights):
        return product
    return None


def _other_inputs_constant(consumer, position, nodes):
    """True when every other data input of `consumer` is a constant too (not a weight use)."""
    others = [text.split(":")[0] for index, text in enumerate(consumer.input)
              if index != position and not text.startswith("^")]
    return all(nodes.get(name) is not None and nodes[name].op == "Const" for name in others)
