"""Target weights the model sets itself: drafted as `leave` rules, each with its reason.

Some weights of a Keras model have no TF1 variable behind them: the
statistics of a preprocessing layer (keras.applications' EfficientNet starts
with a `Normalization` holding mean, variance and count), or a layer the
legacy model never had (a pooler). A draft leaves them as the model built
them with a `leave` rule that says why, never silently:

- preprocessing statistics, known by their layer's class, always;
- a weight no source variable can fill (no kind and shape fits), only when
  parity compared the outputs with it left so and they match.
"""

import dataclasses
import re

from migrate.suggest import align as align_lib
from migrate.suggest import draft_writer

PREPROCESSING_CLASSES = ("Normalization",)
PREPROCESSING_REASON = ("preprocessing statistics: the model's {layer_class} layer sets them "
                        "(constructor or adapt()); no TF1 variable holds them")
NEVER_HAD_REASON = ("no source variable fits {example}: a layer the legacy model never had "
                    "(such as a pooler); the compared outputs match with it as the model built "
                    "it")


@dataclasses.dataclass
class Left:
    """A target item the draft leaves as the model built it.

    Attributes:
        target: the `TargetItem`.
        reason: why, for the rule's `reason`.
        certain: True for preprocessing statistics; False for a weight no
            source fits, which parity must confirm.
    """

    target: object
    reason: str
    certain: bool


def preprocessing(targets):
    """Returns a `Left` for each target item of a preprocessing layer (`PREPROCESSING_CLASSES`)."""
    return [Left(target, PREPROCESSING_REASON.format(layer_class=target.layer_class), True)
            for target in targets if target.layer_class in PREPROCESSING_CLASSES]


def never_had(targets, sources):
    """Returns a `Left` for each free target item of a layer no source can fill.

    A layer is one the legacy model never had when one of its free weights
    fits no source item at all (no kind and shape fits); its other free
    weights go with it (a pooler's bias has the shape of many biases).

    Args:
        targets: the free `TargetItem`s.
        sources: every `SourceItem`.
    """
    unfillable = {}
    for target in targets:
        if (target.shape is not None and target.layer not in unfillable
                and all(align_lib.compatible(source, target) is None for source in sources)):
            unfillable[target.layer] = f"{target.name} {_text(target.shape)}"
    return [Left(target, NEVER_HAD_REASON.format(example=unfillable[target.layer]), False)
            for target in targets if target.layer in unfillable]


def remaining(targets, left):
    """`targets` less the ones `left` leaves."""
    return [target for target in targets if all(target is not item.target for item in left)]


def draft_rules(left):
    """Returns the `leave` `DraftRule`s for `left`: one per layer and reason, in target order."""
    groups = {}
    for item in left:
        groups.setdefault((item.target.layer, item.reason, item.certain), []).append(item)
    rules = []
    for (layer, reason, certain), items in groups.items():
        paths = [weight.path for item in items for weight in item.target.weights]
        if len(paths) == 1:
            pattern = re.escape(paths[0])
        else:
            leaves = "|".join(re.escape(path[len(layer) + 1:]) for path in paths)
            pattern = f"{re.escape(layer)}/({leaves})"
        shapes = ", ".join(f"{weight.path} {_text(weight.shape)}"
                           for item in items for weight in item.target.weights)
        rules.append(draft_writer.DraftRule(
            members=[(path, None) for path in paths], leave=True, reason=reason,
            certain=certain, match=pattern, evidence=f"no source fills {shapes}"))
    return rules


def _text(shape):
    return "[" + ", ".join(str(size) for size in shape) + "]"
