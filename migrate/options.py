"""How a conversion is done: one validated, frozen options object, from the CLI to the workers."""

import dataclasses

from migrate.errors import ArgumentError
from migrate.source import meta_graph
from migrate.source.roles import KEEP_MODES
from migrate.verify_settings import VerifySettings

KEEP_CHOICES = tuple(KEEP_MODES)
# Formats written beside the TF2 checkpoint (`migrate.output.export` writes them).
WEIGHTS_H5 = "weights_h5"
KERAS = "keras"
SAVED_MODEL = "saved_model"
EXPORT_FORMATS = (WEIGHTS_H5, KERAS, SAVED_MODEL)
FILE_NAMES = {WEIGHTS_H5: "model.weights.h5", KERAS: "model.keras", SAVED_MODEL: "saved_model"}


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
        builder: a graph builder for a checkpoint without `.meta` (or in
            place of its `.meta`): a `legacy_graphs` name, or `module:callable`
            naming a function that builds the TF1 graph in the default graph,
            as the model's own code did. Its graph gives the roles, and
            verification runs it, restored from the checkpoint.
        verify: a `VerifySettings`: after writing, restore a fresh model from
            the output and compare it with the legacy graph; only a passing
            conversion is put in place. None: no verification.
        exports: formats written beside the TF2 checkpoint, any of
            `weights_h5`, `keras`, `saved_model` (`migrate.output.export`); a
            list or a comma-separated string, kept as a tuple.
        tags: for a TF1 SavedModel source, the tag set of the MetaGraphDef
            that gives the roles and the graph (a list, or a comma-separated
            string, kept as a sorted tuple; `()` is the empty set); None:
            `serve` (the empty set for a TF-Hub v1 module).
        signature: for a TF1 SavedModel source, the SignatureDef whose inputs
            and outputs verification feeds and compares; None:
            `serving_default` (`default` for a TF-Hub v1 module).

    Example:

    >>> ConversionOptions(keep="model_state").keep
    'model_state'
    >>> ConversionOptions(keep="everything")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    migrate.errors.ArgumentError: Expected keep to be one of ... Received: keep='everything'
    >>> ConversionOptions(builder="resnet_v1")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    migrate.errors.ArgumentError: Unknown legacy graph builder. Did you mean 'resnet_v1_50'? ...
    >>> options = ConversionOptions(exports="weights_h5,keras")
    >>> options.exports, ConversionOptions.from_json(options.to_json()) == options
    (('weights_h5', 'keras'), True)
    >>> options = ConversionOptions(tags="serve,gpu", signature="predict")
    >>> options.tags, ConversionOptions.from_json(options.to_json()) == options
    (('gpu', 'serve'), True)
    """

    keep: str = "trainable"
    ema: bool = False
    allow_nonfinite: bool = False
    use_meta: bool = True
    builder: str | None = None
    verify: VerifySettings | None = None
    exports: tuple = ()
    tags: tuple | None = None
    signature: str | None = None

    def __post_init__(self):
        if self.keep not in KEEP_CHOICES:
            raise ArgumentError(f"Expected keep to be one of {', '.join(KEEP_CHOICES)}. "
                                f"Received: keep={self.keep!r}")
        for name in ("ema", "allow_nonfinite", "use_meta"):
            value = getattr(self, name)
            if not isinstance(value, bool):
                raise ArgumentError(
                    f"Expected {name} to be True or False. Received: {name}={value!r}")
        if self.builder is not None and (not isinstance(self.builder, str) or not self.builder):
            raise ArgumentError(f"Expected builder to be a legacy_graphs builder name, "
                                f"module:callable, or None. "
                                f"Received: builder={self.builder!r}")
        if self.builder is not None:
            meta_graph.check_builder(self.builder)
        if self.verify is not None and not isinstance(self.verify, VerifySettings):
            raise ArgumentError(f"Expected verify to be a VerifySettings or None. "
                                f"Received: verify={self.verify!r}")
        # Frozen: the normalized tuples are set once, here.
        object.__setattr__(self, "exports", parse_formats(self.exports))
        if self.tags is not None:
            object.__setattr__(self, "tags", parse_tags(self.tags))
        if self.signature is not None and (not isinstance(self.signature, str)
                                           or not self.signature):
            raise ArgumentError(f"Expected signature to be a SignatureDef name such as "
                                f"'serving_default', or None. Received: "
                                f"signature={self.signature!r}")

    def to_json(self):
        document = dataclasses.asdict(self)
        document["verify"] = None if self.verify is None else self.verify.to_json()
        document["exports"] = list(self.exports)
        # Recorded only when given: manifests written before these options
        # existed still describe the same conversion of a checkpoint.
        for name in ("tags", "signature"):
            if document[name] is None:
                del document[name]
        if self.tags is not None:
            document["tags"] = list(self.tags)
        return document

    @classmethod
    def from_json(cls, document):
        document = dict(document)
        if document.get("verify") is not None:
            document["verify"] = VerifySettings.from_json(document["verify"])
        return cls(**document)


def parse_formats(formats):
    """Returns the export formats as a tuple, checked.

    Args:
        formats: a sequence of format names, or one comma-separated string
            (`"weights_h5,keras"`); empty for none.

    Returns:
        A tuple of distinct names from `EXPORT_FORMATS`, in the order given.

    Raises:
        ArgumentError: an unknown or repeated name.

    Example:

    >>> parse_formats("weights_h5, saved_model")
    ('weights_h5', 'saved_model')
    >>> parse_formats(["h5"])
    Traceback (most recent call last):
    ...
    migrate.errors.ArgumentError: Expected exports to be among weights_h5, keras, saved_model. Received: exports=['h5']
    """
    if isinstance(formats, str):
        formats = [part.strip() for part in formats.split(",") if part.strip()]
    if not isinstance(formats, (list, tuple)) or not all(
            isinstance(name, str) for name in formats):
        raise ArgumentError(f"Expected exports to be a list of format names. "
                            f"Received: exports={formats!r}")
    unknown = [name for name in formats if name not in EXPORT_FORMATS]
    if unknown:
        raise ArgumentError(f"Expected exports to be among {', '.join(EXPORT_FORMATS)}. "
                            f"Received: exports={list(unknown)!r}")
    if len(set(formats)) != len(formats):
        raise ArgumentError(
            f"Expected each export format once. Received: exports={list(formats)!r}")
    return tuple(formats)


def parse_tags(tags):
    """Returns a SavedModel tag set as a sorted tuple of distinct tags.

    Args:
        tags: a sequence of tags, or one comma-separated string (`""` or
            `[]` is the empty tag set of a TF-Hub v1 module's inference graph).

    Raises:
        ArgumentError: a tag that is not a non-empty string.

    Example:

    >>> parse_tags("serve, gpu"), parse_tags([])
    (('gpu', 'serve'), ())
    >>> parse_tags([1])  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    migrate.errors.ArgumentError: Expected tags to be a list of tag names ... Received: tags=[1]
    """
    if isinstance(tags, str):
        tags = [part.strip() for part in tags.split(",") if part.strip()]
    if not isinstance(tags, (list, tuple)) or not all(
            isinstance(tag, str) and tag for tag in tags):
        raise ArgumentError(f"Expected tags to be a list of tag names such as ['serve'] (or a "
                            f"comma-separated string). Received: tags={tags!r}")
    return tuple(sorted(set(tags)))
