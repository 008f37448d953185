"""ImageNet classifiers with a background class: 1001 logits in TF1, 1000 in Keras.

tf-slim's Inception, ResNet-v2 and MobileNet checkpoints (and the TPU
EfficientNets) score 1001 classes, class 0 being "background"; Keras'
ImageNet models score the other 1000. The logits kernel and bias then fill
a 1000-class model once their last axis is sliced: `suggest` drafts
`slice(-1, 1, 1001)`, and verification compares the legacy logits without
class 0 (`without_background_class`), saying so in its report.

Example:

>>> background_cut("kernel", (1, 1, 1280, 1001), (1280, 1000))
(1, 1, 1280, 1000)
>>> background_cut("gamma", (1001,), (1000,)) is None
True
"""

import numpy as np

WITH_BACKGROUND = 1001
WITHOUT_BACKGROUND = 1000
SLICE = f"slice(-1, 1, {WITH_BACKGROUND})"
# Only a classifier's own weights have a class axis last.
_CLASS_AXIS_KINDS = ("kernel", "bias")


def background_cut(kind, source_shape, target_shape):
    """Returns the source's shape without the background class, when that is all that differs.

    Args:
        kind: the source's kind of weight (`items.source_kind`).
        source_shape, target_shape: the two shapes.

    Returns:
        The source shape with its last axis 1000, or None when the shapes do
        not have 1001 and 1000 classes last.
    """
    if kind not in _CLASS_AXIS_KINDS or source_shape is None or target_shape is None:
        return None
    if not source_shape or not target_shape:
        return None
    if source_shape[-1] != WITH_BACKGROUND or target_shape[-1] != WITHOUT_BACKGROUND:
        return None
    return (*source_shape[:-1], WITHOUT_BACKGROUND)


def with_slice(found, source_shape):
    """Adds the slice to a `compatible` result `(score, transforms, evidence)` of the cut shape.

    >>> with_slice((10.5, (), ["shape [1000]", "biases -> bias"]), (1001,))[1:]
    (('slice(-1, 1, 1001)',), ['shape [1001] -> [1000]: the background class 0 sliced off (1001 ImageNet classes, as in tf-slim)', 'biases -> bias'])
    """
    score, transforms, evidence = found
    cut = background_cut(_CLASS_AXIS_KINDS[0], source_shape, (WITHOUT_BACKGROUND,))
    said = [f"shape {_text(source_shape)} -> {_text(cut)}: the background class 0 sliced off "
            f"({WITH_BACKGROUND} ImageNet classes, as in tf-slim)"]
    rest = [text for text in evidence if text != f"shape {_text(cut)}"]
    return score, (*transforms, SLICE), said + rest


def _text(shape):
    return "[" + ", ".join(str(size) for size in shape) + "]"


def without_background_class(legacy_outputs, keras_outputs):
    """Returns the legacy output without its background class when only that tells them apart.

    A legacy output whose last axis has 1001 classes where the Keras
    output's has 1000 (all other axes alike, size-1 axes aside) is compared
    as `legacy[..., 1:]`.

    Returns:
        `(legacy, note)`: the legacy output as given and None when the rule
        does not apply; else without class 0, and a note saying so.

    Example:

    >>> legacy, note = without_background_class(np.zeros([2, 1001]), np.zeros([2, 1000]))
    >>> legacy.shape, note
    ((2, 1000), 'compared without the background class 0 of the legacy output (1001 ImageNet classes, as in tf-slim): legacy [2, 1001], Keras [2, 1000]')
    """
    legacy_outputs, keras_outputs = np.asarray(legacy_outputs), np.asarray(keras_outputs)
    legacy_shape, keras_shape = legacy_outputs.shape, keras_outputs.shape
    if (not legacy_shape or not keras_shape or legacy_shape[-1] != WITH_BACKGROUND
            or keras_shape[-1] != WITHOUT_BACKGROUND
            or [size for size in legacy_shape[:-1] if size != 1]
            != [size for size in keras_shape[:-1] if size != 1]):
        return legacy_outputs, None
    return legacy_outputs[..., 1:], (
        f"compared without the background class 0 of the legacy output ({WITH_BACKGROUND} "
        f"ImageNet classes, as in tf-slim): legacy {list(legacy_shape)}, Keras "
        f"{list(keras_shape)}")
