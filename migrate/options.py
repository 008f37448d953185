"""How a conversion is done: one validated, frozen options object from the command line to the workers."""

import dataclasses

from migrate.errors import ArgumentError
from migrate.output import export
from migrate.source.roles import KEEP_MODES

KEEP_CHOICES = tuple(KEEP_MODES)


@dataclasses.dataclass(frozen=True, kw_only=True)
class ConversionOptions:
    """What a conversion carries over and where it learns the variables' roles.

    Attributes:
        keep: "trainable" (only trainable weights) or "model_state" (also the
            model's non-trainable weights, such as BatchNorm statistics).
        ema: read each variable's `ExponentialMovingAverage` shadow in its place.
        allow_nonfinite: carry NaN/Inf weights instead of refusing them
            (they are always reported).
        use_meta: read variable roles from the `.meta` graph beside the checkpoint.
        builder: name of a `legacy_graphs` builder whose graph gives the roles
            when there is no `.meta` (or `use_meta` is False).
        exports: formats written beside the TF2 checkpoint, any of
            `weights_h5`, `keras`, `saved_model` (`migrate.output.export`); a
            list or a comma-separated string, kept as a tuple.

    Example:

    >>> ConversionOptions(keep="model_state").keep
    'model_state'
    >>> ConversionOptions(keep="everything")
    Traceback (most recent call last):
    ...
    migrate.errors.ArgumentError: Expected keep to be one of trainable, model_state. Received: keep='everything'
    >>> options = ConversionOptions(exports="weights_h5,keras")
    >>> options.exports, ConversionOptions.from_json(options.to_json()) == options
    (('weights_h5', 'keras'), True)
    """

    keep: str = "trainable"
    ema: bool = False
    allow_nonfinite: bool = False
    use_meta: bool = True
    builder: str | None = None
    exports: tuple = ()

    def __post_init__(self):
        if self.keep not in KEEP_CHOICES:
            raise ArgumentError(f"Expected keep to be one of {', '.join(KEEP_CHOICES)}. "
                             f"Received: keep={self.keep!r}")
        for name in ("ema", "allow_nonfinite", "use_meta"):
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise ArgumentError(f"Expected {name} to be True or False. Received: {name}={value!r}")
        if self.builder is not None and (not isinstance(self.builder, str) or not self.builder):
            raise ArgumentError(f"Expected builder to be a legacy_graphs builder name or None. "
                             f"Received: builder={self.builder!r}")
        # Frozen: the normalized tuple is set once, here.
        object.__setattr__(self, "exports", export.parse_formats(self.exports))

    def to_json(self):
        document = dataclasses.asdict(self)
        document["exports"] = list(self.exports)
        return document

    @classmethod
    def from_json(cls, document):
        return cls(**document)
