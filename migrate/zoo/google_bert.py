"""google-research/bert checkpoint into keras-hub's BertBackbone (sequence and pooled outputs).

Any size, tiny to large: the backbone's config is read from `bert_config.json`
beside the checkpoint when it is there (as the released checkpoints carry
it), else from the variables' shapes (metadata only; nothing is
downloaded). Shapes do not say the number of attention heads: without a
`bert_config.json`, the 64-wide heads of every released BERT are assumed.

BertBackbone takes a dict (`token_ids`, `segment_ids`, `padding_mask`) and
returns one (`sequence_output`, `pooled_output`). Its weight paths, for block N:

    token_embedding/embeddings, position_embedding/embeddings,
    segment_embedding/embeddings, embeddings_layer_norm/{gamma,beta},
    transformer_layer_N/self_attention_layer/{query,key,value}/{kernel,bias}
        ([hidden, heads, head_dim] kernels, [heads, head_dim] biases),
    transformer_layer_N/self_attention_layer/attention_output/{kernel,bias}
        ([heads, head_dim, hidden]),
    transformer_layer_N/self_attention_layer_norm/{gamma,beta},
    transformer_layer_N/feedforward_intermediate_dense/{kernel,bias},
    transformer_layer_N/feedforward_output_dense/{kernel,bias},
    transformer_layer_N/feedforward_layer_norm/{gamma,beta},
    pooled_dense/{kernel,bias}

keras-hub's BertBackbone uses BERT's tanh approximation of GELU and
LayerNorm epsilon 1e-12, as `modeling.py` does: no formula differs.
"""

import json
import os
import re

from migrate.errors import ModelError
from migrate.errors import first_line
from migrate.source.locate import resolve_prefix
from migrate.source.locate import tensorflow_path

# The same formulas in another operation order (keras-hub's fused attention
# einsums, Keras' LayerNormalization). Measured on the tiny test checkpoint:
# 4.1e-7 (sequence output) and 4.8e-7 (pooled output) of the largest output.
TOLERANCE = 1e-5
CONFIG_FILE_NAME = "bert_config.json"
INSTALL_HINT = "pip install 'tf1-migrate[hub]' (or pip install keras-hub)"
# Every released google-research/bert model has 64-wide attention heads.
HEAD_SIZE = 64
_LAYER = re.compile(r"bert/encoder/layer_(\d+)/attention/self/query/kernel")

# How the legacy graph's tensors pair with the backbone's inputs and outputs;
# `input_mask` and `padding_mask` are all ones (no padding).
VERIFY = {
    "input_tensor": "token_ids=input_ids:0,segment_ids=segment_ids:0",
    "output_tensor": "sequence_output=sequence_output:0,pooled_output=pooled_output:0",
    "feeds": {"input_mask:0": 1},
    "keras_feeds": {"padding_mask": 1},
    "input_max": [100, 2],
}


def backbone_config(checkpoint):
    """Returns the `keras_hub.models.BertBackbone` keyword arguments for a BERT checkpoint.

    Args:
        checkpoint: the checkpoint's prefix or directory.

    Raises:
        ModelError: the checkpoint has no `bert/` variables of the expected
            names, or the heads cannot be told (no `bert_config.json` and a
            hidden size that is not a multiple of 64).
    """
    import tensorflow as tf

    prefix = resolve_prefix(checkpoint)
    config_path = os.path.join(os.path.dirname(prefix), CONFIG_FILE_NAME)
    if os.path.exists(config_path):
        with open(config_path, encoding="utf-8") as file:
            config = json.load(file)
        try:
            return {"vocabulary_size": config["vocab_size"],
                    "num_layers": config["num_hidden_layers"],
                    "num_heads": config["num_attention_heads"],
                    "hidden_dim": config["hidden_size"],
                    "intermediate_dim": config["intermediate_size"],
                    "max_sequence_length": config["max_position_embeddings"],
                    "num_segments": config.get("type_vocab_size", 2)}
        except KeyError as error:
            raise ModelError(f"{config_path} has no {error}. Expected google-research/bert's "
                             f"bert_config.json. Received: keys {sorted(config)}") from None
    shapes = dict(tf.train.list_variables(tensorflow_path(prefix)))
    names = ("bert/embeddings/word_embeddings", "bert/embeddings/position_embeddings",
             "bert/embeddings/token_type_embeddings",
             "bert/encoder/layer_0/intermediate/dense/kernel")
    missing = [name for name in names if name not in shapes]
    if missing:
        raise ModelError(f"The checkpoint is not a google-research/bert one: it has no "
                         f"{', '.join(missing)}. Expected modeling.py's variable names. "
                         f"Received: checkpoint={prefix!r}")
    vocabulary_size, hidden_dim = shapes[names[0]]
    if hidden_dim % HEAD_SIZE:
        raise ModelError(f"The number of attention heads is not in the variables' shapes, and "
                         f"hidden size {hidden_dim} is no multiple of the released models' "
                         f"{HEAD_SIZE}-wide heads. Expected {CONFIG_FILE_NAME} beside the "
                         f"checkpoint. Received: checkpoint={prefix!r}")
    return {"vocabulary_size": vocabulary_size,
            "num_layers": sum(1 for name in shapes if _LAYER.fullmatch(name)),
            "num_heads": hidden_dim // HEAD_SIZE, "hidden_dim": hidden_dim,
            "intermediate_dim": shapes[names[3]][1],
            "max_sequence_length": shapes[names[1]][0], "num_segments": shapes[names[2]][0]}


def build_model(checkpoint=None):
    """Returns a `keras_hub.models.BertBackbone` the size of the BERT checkpoint `checkpoint`.

    Built from its config alone: no preset, no download.

    Args:
        checkpoint: the legacy checkpoint's prefix or directory (the
            command line and `migrate.convert` pass it).

    Raises:
        ModelError: no checkpoint, keras-hub is not installed, or the
            config cannot be read (see `backbone_config`).
    """
    if checkpoint is None:
        raise ModelError("The google_bert entry sizes BertBackbone from the checkpoint. "
                         "Expected checkpoint=PREFIX. Received: checkpoint=None")
    config = backbone_config(checkpoint)
    try:
        import keras_hub
    except ImportError as error:
        raise ModelError(f"The google_bert entry builds keras_hub.models.BertBackbone, and "
                         f"keras-hub cannot be imported ({first_line(error)}). Expected it "
                         f"installed: {INSTALL_HINT}.") from None
    return keras_hub.models.BertBackbone(**config)
