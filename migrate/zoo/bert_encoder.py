"""BERT encoder (google-research/bert naming) into a Keras 3 MultiHeadAttention encoder.

The Keras model maps `input_ids` `[batch, seq]` (int32; token types all 0,
no padding mask) to BERT's sequence output `[batch, seq, hidden]`. Weight
paths, for layer N:

    word_embeddings/embeddings, token_type_embeddings/embeddings,
    position_embeddings/embeddings, embeddings_layer_norm/{gamma,beta},
    layer_N_attention/{query,key,value,attention_output}/{kernel,bias},
    layer_N_attention_layer_norm/{gamma,beta},
    layer_N_intermediate/{kernel,bias}, layer_N_output/{kernel,bias},
    layer_N_output_layer_norm/{gamma,beta}

The pooler (`bert/pooler/dense`) is a head on the first token, not part of
the sequence output; the table drops it on purpose.
"""

import keras
from keras import ops

from legacy_graphs import bert_encoder as legacy_bert_encoder

# Attention matches BERT op for op; layer normalization and GELU reach the
# same formulas in another operation order. Measured on "tiny": max abs
# difference 7e-7, 2.3e-7 of the largest output.
TOLERANCE = 1e-5


@keras.saving.register_keras_serializable(package="tf1_migrate")
def gelu_tanh(x):
    """GELU with BERT's tanh approximation."""
    return keras.activations.gelu(x, approximate=True)


@keras.saving.register_keras_serializable(package="tf1_migrate")
class PositionEmbedding(keras.layers.Layer):
    """Learned absolute positions: the first `seq` rows of an `[max_positions, hidden]` table.

    Returns the position embeddings broadcast to the shape of its
    `[batch, seq, hidden]` input, like BERT's `tf.slice` of
    `position_embeddings`.
    """

    def __init__(self, max_positions, **kwargs):
        super().__init__(**kwargs)
        self.max_positions = max_positions

    def build(self, input_shape):
        self.embeddings = self.add_weight(
            shape=(self.max_positions, input_shape[-1]), initializer="zeros",
            name="embeddings")

    def call(self, inputs):
        shape = ops.shape(inputs)
        positions = ops.slice(self.embeddings, (0, 0), (shape[1], shape[2]))
        return ops.broadcast_to(ops.expand_dims(positions, 0), shape)

    def get_config(self):
        return {**super().get_config(), "max_positions": self.max_positions}


def build_model(config=legacy_bert_encoder.DEFAULT_CONFIG):
    """Returns the built Keras 3 encoder for a `legacy_graphs.bert_encoder` preset.

    Args:
        config: a preset name (`"tiny"`, `"base"`) or a `BertConfig`.

    Returns:
        A functional `keras.Model` from `input_ids` to the sequence output.

    Raises:
        ValueError: `config` names no preset.
    """
    bert_config = legacy_bert_encoder.get_config(config)
    hidden_size = bert_config.hidden_size
    heads = bert_config.num_attention_heads
    epsilon = legacy_bert_encoder.LAYER_NORM_EPSILON

    input_ids = keras.Input((None,), dtype="int32", name="input_ids")
    word_embeddings = keras.layers.Embedding(
        bert_config.vocab_size, hidden_size, name="word_embeddings")(input_ids)
    token_type_embeddings = keras.layers.Embedding(
        bert_config.type_vocab_size, hidden_size,
        name="token_type_embeddings")(ops.zeros_like(input_ids))
    position_embeddings = PositionEmbedding(
        bert_config.max_position_embeddings, name="position_embeddings")(word_embeddings)
    x = keras.layers.Add(name="embeddings_add")(
        [word_embeddings, token_type_embeddings, position_embeddings])
    x = keras.layers.LayerNormalization(epsilon=epsilon, name="embeddings_layer_norm")(x)
    for index in range(bert_config.num_hidden_layers):
        prefix = f"layer_{index}"
        attention = keras.layers.MultiHeadAttention(
            heads, key_dim=hidden_size // heads, name=f"{prefix}_attention")(x, x)
        x = keras.layers.Add(name=f"{prefix}_attention_add")([attention, x])
        x = keras.layers.LayerNormalization(
            epsilon=epsilon, name=f"{prefix}_attention_layer_norm")(x)
        intermediate = keras.layers.Dense(
            bert_config.intermediate_size, activation=gelu_tanh,
            name=f"{prefix}_intermediate")(x)
        output = keras.layers.Dense(hidden_size, name=f"{prefix}_output")(intermediate)
        x = keras.layers.Add(name=f"{prefix}_output_add")([output, x])
        x = keras.layers.LayerNormalization(
            epsilon=epsilon, name=f"{prefix}_output_layer_norm")(x)
    return keras.Model(input_ids, x, name="bert_encoder")


def build_base_model():
    """Returns the built BERT-base encoder, for `--model=migrate.zoo.bert_encoder:build_base_model`."""
    return build_model("base")
