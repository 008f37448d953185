"""Inputs to build a model that was never called: zeros shaped like the legacy graph's inputs.

A subclassed Keras model has no weights until it is called, and a draft
needs its weights and its traced call. The legacy graph's placeholders say
what the model takes: each becomes an array of zeros of its shape, a small
batch first (as the model takes it, whichever axis the placeholder has it
on), sizes the graph leaves unknown from the input shapes given, and the
model is built by calling it on them.
"""

import numpy as np

from migrate.errors import ModelError

# Rows of the batch a never-called model is built on.
BUILD_BATCH = 2


def zeros_for(inputs, verify=None):
    """Returns a function that gives the arrays to call a never-called model on.

    Args:
        inputs: `(name, shape, dtype name)` of the legacy graph's fed
            placeholders (`tf1_structure.GraphStructure.inputs`); unknown
            sizes are None.
        verify: a `VerifySettings` whose `input_tensors` choose and order
            the placeholders (`feeds` leave some out), whose `input_shapes`
            give sizes the graph leaves unknown and whose `batch_axes` say
            where the batch is, or None.

    Returns:
        `() -> list of arrays`, which raises `ModelError` (option
        `input_shape`) in one line when the graph does not give the shapes.

    Example:

    >>> make = zeros_for([("images", (None, 4, 4, 3), "float32")])
    >>> [array.shape for array in make()]
    [(2, 4, 4, 3)]
    """
    inputs = list(inputs)
    if verify is not None and verify.input_tensors:
        by_name = {f"{name}:0": (name, shape, dtype) for name, shape, dtype in inputs}
        inputs = [by_name[name] for name in verify.input_tensors if name in by_name]
    if verify is not None:
        fed = {name for name, _ in verify.feeds}
        inputs = [item for item in inputs if f"{item[0]}:0" not in fed]

    def arrays():
        if not inputs:
            raise ModelError("The model has no weights, and the legacy graph shows no "
                             "placeholder to call it on. Expected a built model (call it on an "
                             "input in the factory). Received: inputs=[]", option="input_shape")
        found = []
        for index, (name, shape, dtype) in enumerate(inputs):
            given = verify.shape_for(index) if verify is not None else None
            # The model takes the batch first, whichever axis the graph's placeholder has it on.
            axis = (verify.axis_for(index) if verify is not None else None) or 0
            rest = [size for position, size in enumerate(shape) if position != axis]
            sizes = [BUILD_BATCH, *(given if given is not None else rest)]
            if None in sizes:
                raise ModelError(
                    f"The model has no weights, and the legacy graph's input {name}:0 "
                    f"{_text(shape)} has unknown sizes to call it on. Expected a built model "
                    f"(call it on an input in the factory) or the input's shape without the "
                    f"batch dimension. Received: input_shape=None", option="input_shape")
            found.append(np.zeros(sizes, dtype))
        return found

    return arrays


def _text(shape):
    return "[" + ", ".join("None" if size is None else str(size) for size in shape) + "]"
