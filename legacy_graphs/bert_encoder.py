"""A BERT encoder named exactly like google-research/bert `modeling.py`, trained briefly with Adam."""

import dataclasses
import math

import numpy as np

from legacy_graphs import compat
from legacy_graphs import training

NAME = "bert_encoder"
INPUT_TENSOR = "input_ids:0"
OUTPUT_TENSOR = "sequence_output:0"
POOLED_OUTPUT_TENSOR = "pooled_output:0"
# The placeholder is [None, None]: any sequence length up to the position
# table works; the verifier feeds this one.
INPUT_SHAPE = (8,)
INPUT_DTYPE = "int32"
# Token ids below the smallest preset's vocabulary, so every preset accepts them.
INPUT_MAX = 100

# BERT's `tf.contrib.layers.layer_norm` hard-codes this epsilon for float32.
LAYER_NORM_EPSILON = 1e-12
# BERT adds this to the attention scores of masked-out positions.
MASK_ADDER = -10000.0

BATCH_SIZE = 4
LEARNING_RATE = 1e-3


@dataclasses.dataclass(frozen=True)
class BertConfig:
    """Sizes of a BERT model, as in google-research/bert's `bert_config.json`."""

    vocab_size: int
    hidden_size: int
    num_hidden_layers: int
    num_attention_heads: int
    intermediate_size: int
    max_position_embeddings: int
    type_vocab_size: int = 2
    initializer_range: float = 0.02
    hidden_dropout_prob: float = 0.1
    attention_probs_dropout_prob: float = 0.1


CONFIGS = {
    # Wider initial weights than BERT's 0.02 give a tiny, briefly trained model
    # attention patterns far from uniform, so a head-layout mistake shows.
    "tiny": BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2,
                       num_attention_heads=4, intermediate_size=64,
                       max_position_embeddings=16, initializer_range=0.2),
    "base": BertConfig(vocab_size=30522, hidden_size=768, num_hidden_layers=12,
                       num_attention_heads=12, intermediate_size=3072,
                       max_position_embeddings=512),
}
DEFAULT_CONFIG = "tiny"


def get_config(config=DEFAULT_CONFIG):
    """Returns the `BertConfig` preset called `config`.

    Args:
        config: a preset name, one of `CONFIGS`, or a `BertConfig`.

    Returns:
        The `BertConfig`.

    Raises:
        ValueError: `config` names no preset.
    """
    if isinstance(config, BertConfig):
        return config
    if config not in CONFIGS:
        raise ValueError(
            f"Unknown bert_encoder config. Expected one of {', '.join(CONFIGS)}. "
            f"Received: config={config!r}")
    return CONFIGS[config]


def gelu(x):
    """BERT's tanh approximation of GELU, op for op as in `modeling.py`."""
    tf = compat.import_tf_v1()
    cdf = 0.5 * (1.0 + tf.tanh((np.sqrt(2 / np.pi) * (x + 0.044715 * tf.pow(x, 3)))))
    return x * cdf


def layer_norm(inputs, scope="LayerNorm"):
    """Layer normalization over the last axis, as `tf.contrib.layers.layer_norm` computes it.

    Creates `<scope>/beta` (zeros) and `<scope>/gamma` (ones) as model
    variables, then `nn.moments` + `nn.batch_normalization` with epsilon 1e-12.
    """
    tf = compat.import_tf_v1()
    collections = [tf.GraphKeys.GLOBAL_VARIABLES, tf.GraphKeys.MODEL_VARIABLES]
    with tf.variable_scope(scope):
        params_shape = inputs.shape[-1:]
        beta = tf.get_variable("beta", params_shape, initializer=tf.zeros_initializer(),
                               collections=collections)
        gamma = tf.get_variable("gamma", params_shape, initializer=tf.ones_initializer(),
                                collections=collections)
        mean, variance = tf.nn.moments(inputs, [inputs.shape.ndims - 1], keep_dims=True)
        return tf.nn.batch_normalization(inputs, mean, variance, offset=beta, scale=gamma,
                                         variance_epsilon=LAYER_NORM_EPSILON)


def dropout(inputs, rate, is_training):
    """Drops `inputs` at `rate` only when the `is_training` tensor is true."""
    tf = compat.import_tf_v1()
    if not rate:
        return inputs
    return tf.cond(is_training, lambda: tf.nn.dropout(inputs, rate=rate), lambda: inputs)


def _initializer(config):
    tf = compat.import_tf_v1()
    return tf.truncated_normal_initializer(stddev=config.initializer_range)


def attention_layer(layer_input, *, attention_mask, num_attention_heads, size_per_head,
                    batch_size, seq_length, is_training, attention_probs_dropout_prob=0.0,
                    initializer_range=0.02):
    """BERT's `attention_layer` for self-attention on `[batch * seq, width]` inputs.

    Creates `query`, `key` and `value` dense layers in the current variable
    scope (BERT calls it inside `attention/self`).

    Args:
        layer_input: `[batch_size * seq_length, width]` float tensor.
        attention_mask: `[batch_size, seq_length, seq_length]` of 1 (attend)
            and 0 (masked), or None.
        num_attention_heads: number of heads.
        size_per_head: width of each head.
        batch_size: scalar tensor or int.
        seq_length: scalar tensor or int.
        is_training: boolean scalar tensor that enables dropout.
        attention_probs_dropout_prob: dropout rate on the attention weights.
        initializer_range: stddev of the truncated normal kernel initializer.

    Returns:
        `[batch_size * seq_length, num_attention_heads * size_per_head]`.
    """
    tf = compat.import_tf_v1()
    initializer = tf.truncated_normal_initializer(stddev=initializer_range)
    width = num_attention_heads * size_per_head

    def transpose_for_scores(tensor):
        tensor = tf.reshape(tensor, [batch_size, seq_length, num_attention_heads, size_per_head])
        return tf.transpose(tensor, [0, 2, 1, 3])

    query_layer = tf.layers.dense(layer_input, width, name="query",
                                  kernel_initializer=initializer)
    key_layer = tf.layers.dense(layer_input, width, name="key", kernel_initializer=initializer)
    value_layer = tf.layers.dense(layer_input, width, name="value",
                                  kernel_initializer=initializer)
    query_layer = transpose_for_scores(query_layer)
    key_layer = transpose_for_scores(key_layer)
    attention_scores = tf.matmul(query_layer, key_layer, transpose_b=True)
    attention_scores = tf.multiply(attention_scores, 1.0 / math.sqrt(float(size_per_head)))
    if attention_mask is not None:
        attention_mask = tf.expand_dims(attention_mask, axis=[1])
        attention_scores += (1.0 - tf.cast(attention_mask, tf.float32)) * MASK_ADDER
    attention_probs = tf.nn.softmax(attention_scores)
    attention_probs = dropout(attention_probs, attention_probs_dropout_prob, is_training)
    value_layer = transpose_for_scores(value_layer)
    context_layer = tf.matmul(attention_probs, value_layer)
    context_layer = tf.transpose(context_layer, [0, 2, 1, 3])
    return tf.reshape(context_layer, [batch_size * seq_length, width])


def transformer_model(input_tensor, *, attention_mask, config, batch_size, seq_length,
                      is_training, attention_scope="attention"):
    """`modeling.transformer_model`: `layer_N/{attention,intermediate,output}` scopes.

    `attention_scope` names the attention block's scope (code that opens
    `attention` twice gets `attention_1`).

    Returns the `[batch_size, seq_length, hidden]` output of the last block.
    """
    tf = compat.import_tf_v1()
    hidden_size = config.hidden_size
    size_per_head = hidden_size // config.num_attention_heads
    prev_output = tf.reshape(input_tensor, [-1, hidden_size])
    for layer_index in range(config.num_hidden_layers):
        with tf.variable_scope(f"layer_{layer_index}"):
            layer_input = prev_output
            with tf.variable_scope(attention_scope):
                with tf.variable_scope("self"):
                    attention_output = attention_layer(
                        layer_input, attention_mask=attention_mask,
                        num_attention_heads=config.num_attention_heads,
                        size_per_head=size_per_head, batch_size=batch_size,
                        seq_length=seq_length, is_training=is_training,
                        attention_probs_dropout_prob=config.attention_probs_dropout_prob,
                        initializer_range=config.initializer_range)
                with tf.variable_scope("output"):
                    attention_output = tf.layers.dense(
                        attention_output, hidden_size, kernel_initializer=_initializer(config))
                    attention_output = dropout(attention_output, config.hidden_dropout_prob,
                                               is_training)
                    attention_output = layer_norm(attention_output + layer_input)
            with tf.variable_scope("intermediate"):
                intermediate_output = tf.layers.dense(
                    attention_output, config.intermediate_size, activation=gelu,
                    kernel_initializer=_initializer(config))
            with tf.variable_scope("output"):
                layer_output = tf.layers.dense(intermediate_output, hidden_size,
                                               kernel_initializer=_initializer(config))
                layer_output = dropout(layer_output, config.hidden_dropout_prob, is_training)
                prev_output = layer_norm(layer_output + attention_output)
    return tf.reshape(prev_output, [batch_size, seq_length, hidden_size])


def bert_model(input_ids, *, config, is_training, attention_scope="attention"):
    """Builds BERT's `bert/{embeddings,encoder,pooler}` scopes on `input_ids`.

    Token types are all 0 and the input mask all 1, as when every position
    holds a real token of segment A.

    Args:
        input_ids: `[batch, seq]` int32 tensor.
        config: a `BertConfig`.
        is_training: boolean scalar tensor that enables dropout.
        attention_scope: the scope of each block's attention.

    Returns:
        `(sequence_output, pooled_output)`: `[batch, seq, hidden]` and
        `[batch, hidden]`.
    """
    tf = compat.import_tf_v1()
    hidden_size = config.hidden_size
    batch_size = tf.shape(input_ids)[0]
    seq_length = tf.shape(input_ids)[1]
    with tf.variable_scope("bert"):
        with tf.variable_scope("embeddings"):
            embedding_table = tf.get_variable(
                "word_embeddings", [config.vocab_size, hidden_size],
                initializer=_initializer(config))
            output = tf.gather(embedding_table, input_ids)
            token_type_table = tf.get_variable(
                "token_type_embeddings", [config.type_vocab_size, hidden_size],
                initializer=_initializer(config))
            # BERT looks token types up with a one-hot matmul.
            token_type_ids = tf.reshape(tf.zeros_like(input_ids), [-1])
            one_hot_ids = tf.one_hot(token_type_ids, depth=config.type_vocab_size)
            token_type_embeddings = tf.reshape(tf.matmul(one_hot_ids, token_type_table),
                                               [batch_size, seq_length, hidden_size])
            output += token_type_embeddings
            full_position_embeddings = tf.get_variable(
                "position_embeddings", [config.max_position_embeddings, hidden_size],
                initializer=_initializer(config))
            position_embeddings = tf.slice(full_position_embeddings, [0, 0], [seq_length, -1])
            output += tf.expand_dims(position_embeddings, 0)
            output = layer_norm(output)
            embedding_output = dropout(output, config.hidden_dropout_prob, is_training)
        with tf.variable_scope("encoder"):
            # create_attention_mask_from_input_mask with an all-ones input mask.
            to_mask = tf.cast(tf.reshape(tf.ones_like(input_ids), [batch_size, 1, seq_length]),
                              tf.float32)
            attention_mask = tf.ones([batch_size, seq_length, 1], tf.float32) * to_mask
            sequence_output = transformer_model(
                embedding_output, attention_mask=attention_mask, config=config,
                batch_size=batch_size, seq_length=seq_length, is_training=is_training,
                attention_scope=attention_scope)
        with tf.variable_scope("pooler"):
            first_token_tensor = tf.squeeze(sequence_output[:, 0:1, :], axis=1)
            pooled_output = tf.layers.dense(first_token_tensor, hidden_size, activation=tf.tanh,
                                            kernel_initializer=_initializer(config))
    return sequence_output, pooled_output


def define_graph(config=DEFAULT_CONFIG, *, attention_scope="attention"):
    """Builds the inference graph in the current default graph.

    Args:
        config: a preset name from `CONFIGS` or a `BertConfig`.
        attention_scope: the scope of each block's attention (`attention_1`
            in code that opened `attention` before).

    Returns:
        `(input_ids, sequence_output)`: the `[None, None]` int32 placeholder
        and the `[None, None, hidden]` sequence output. The pooled output is
        the tensor `POOLED_OUTPUT_TENSOR`.
    """
    tf = compat.import_tf_v1()
    config = get_config(config)
    input_ids = tf.placeholder(tf.int32, [None, None], name="input_ids")
    is_training = tf.placeholder_with_default(False, [], name="is_training")
    sequence_output, pooled_output = bert_model(input_ids, config=config,
                                                is_training=is_training,
                                                attention_scope=attention_scope)
    tf.identity(pooled_output, name=POOLED_OUTPUT_TENSOR.split(":")[0])
    return input_ids, tf.identity(sequence_output, name=OUTPUT_TENSOR.split(":")[0])


def write_checkpoint(output_dir, *, steps=3, seed=0, config=DEFAULT_CONFIG):
    """Trains the encoder with Adam on seeded random tokens and saves it.

    The loss predicts random token ids from the sequence output through the
    tied word embeddings (no extra variables), plus a small term on the
    pooled output so the pooler trains too.

    Args:
        output_dir: directory that receives `model.ckpt-<steps>.*`.
        steps: number of training steps; 0 saves the initial weights (with
            zero Adam slots), which is enough for the "base" benchmarks.
        seed: graph and data random seed.
        config: a preset name from `CONFIGS`.

    Returns:
        The checkpoint prefix.
    """
    tf = compat.import_tf_v1()
    bert_config = get_config(config)
    seq_length = INPUT_SHAPE[0]

    def build():
        input_ids, sequence_output = define_graph(bert_config)
        graph = tf.get_default_graph()
        is_training = graph.get_tensor_by_name("is_training:0")
        pooled_output = graph.get_tensor_by_name(POOLED_OUTPUT_TENSOR)
        labels = tf.placeholder(tf.int32, [None, None], name="labels")
        with tf.variable_scope("bert/embeddings", reuse=True):
            embedding_table = tf.get_variable("word_embeddings")
        logits = tf.matmul(tf.reshape(sequence_output, [-1, bert_config.hidden_size]),
                           embedding_table, transpose_b=True)
        loss = (tf.losses.sparse_softmax_cross_entropy(tf.reshape(labels, [-1]), logits)
                + 0.1 * tf.reduce_mean(tf.square(pooled_output - 0.5)))

        def make_feed(rng):
            shape = (BATCH_SIZE, seq_length)
            return {
                input_ids: rng.integers(0, INPUT_MAX, shape).astype("int32"),
                labels: rng.integers(0, INPUT_MAX, shape).astype("int32"),
                is_training: True,
            }

        return loss, make_feed

    return training.train_and_save(
        output_dir=output_dir,
        build=build,
        optimizer=lambda: tf.train.AdamOptimizer(LEARNING_RATE),
        steps=steps,
        seed=seed)
