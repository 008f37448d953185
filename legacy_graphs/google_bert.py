"""google-research/bert pre-training, as `modeling.py` and `run_pretraining.py` build it.

Three placeholders (`input_ids`, `input_mask`, `segment_ids`, `[None, 8]`
int32 as BERT's serving functions declare them), the `bert/` scopes of
`modeling.py` (token types looked up with a one-hot matmul, the attention
mask from `input_mask`, tanh-approximation GELU, LayerNorm epsilon 1e-12),
the `cls/predictions` (masked LM, tied to the word embeddings) and
`cls/seq_relationship` (next sentence) heads, trained with an
AdamWeightDecay optimizer whose slots are `<variable>/adam_m` and
`<variable>/adam_v`, plus `global_step`. The compared outputs are
`sequence_output:0` and `pooled_output:0`.

Each variable of `bert/` is the one of the same name in a released BERT
checkpoint; sizes are presets (`tiny`, `small`) and a `bert_config.json`
with them is written beside the checkpoint, as the released ones carry.
"""

import json
import os
import re

from legacy_graphs import bert_encoder
from legacy_graphs import compat
from legacy_graphs import training

NAME = "google_bert"
INPUT_TENSOR = "input_ids:0"
SEGMENT_TENSOR = "segment_ids:0"
MASK_TENSOR = "input_mask:0"
OUTPUT_TENSOR = "sequence_output:0"
POOLED_OUTPUT_TENSOR = "pooled_output:0"
SEQ_LENGTH = 8
INPUT_SHAPE = (SEQ_LENGTH,)
INPUT_DTYPE = "int32"
INPUT_MAX = 100

BATCH_SIZE = 4
LEARNING_RATE = 1e-3
WEIGHT_DECAY_RATE = 0.01
CONFIG_FILE_NAME = "bert_config.json"

CONFIGS = {
    # Wider initial weights than BERT's 0.02 (as in `bert_encoder`), so a
    # briefly trained model attends far from uniformly and a layout mistake shows.
    "tiny": bert_encoder.BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=2,
                                    num_attention_heads=4, intermediate_size=64,
                                    max_position_embeddings=16, initializer_range=0.2),
    # The released BERT-Tiny's widths (64-wide heads, as every released BERT
    # has), so its size can be read from the shapes alone; a third segment type.
    "small": bert_encoder.BertConfig(vocab_size=120, hidden_size=128, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=512,
                                     max_position_embeddings=24, type_vocab_size=3,
                                     initializer_range=0.2),
}
DEFAULT_CONFIG = "tiny"


def get_config(config=DEFAULT_CONFIG):
    """Returns the `BertConfig` preset called `config` (or `config` itself)."""
    if isinstance(config, bert_encoder.BertConfig):
        return config
    if config not in CONFIGS:
        raise ValueError(f"Unknown google_bert config. Expected one of {', '.join(CONFIGS)}. "
                         f"Received: config={config!r}")
    return CONFIGS[config]


def bert_model(input_ids, input_mask, token_type_ids, *, config, is_training):
    """`modeling.BertModel`: returns `(sequence_output, pooled_output, embedding_table)`."""
    tf = compat.import_tf_v1()
    initializer = tf.truncated_normal_initializer(stddev=config.initializer_range)
    hidden_size = config.hidden_size
    batch_size = tf.shape(input_ids)[0]
    seq_length = tf.shape(input_ids)[1]
    with tf.variable_scope("bert"):
        with tf.variable_scope("embeddings"):
            embedding_table = tf.get_variable(
                "word_embeddings", [config.vocab_size, hidden_size], initializer=initializer)
            output = tf.gather(embedding_table, input_ids)
            token_type_table = tf.get_variable(
                "token_type_embeddings", [config.type_vocab_size, hidden_size],
                initializer=initializer)
            flat_token_type_ids = tf.reshape(token_type_ids, [-1])
            one_hot_ids = tf.one_hot(flat_token_type_ids, depth=config.type_vocab_size)
            token_type_embeddings = tf.reshape(tf.matmul(one_hot_ids, token_type_table),
                                               [batch_size, seq_length, hidden_size])
            output += token_type_embeddings
            full_position_embeddings = tf.get_variable(
                "position_embeddings", [config.max_position_embeddings, hidden_size],
                initializer=initializer)
            position_embeddings = tf.slice(full_position_embeddings, [0, 0], [seq_length, -1])
            output += tf.expand_dims(position_embeddings, 0)
            output = bert_encoder.layer_norm(output)
            embedding_output = bert_encoder.dropout(output, config.hidden_dropout_prob,
                                                    is_training)
        with tf.variable_scope("encoder"):
            # create_attention_mask_from_input_mask.
            to_mask = tf.cast(tf.reshape(input_mask, [batch_size, 1, seq_length]), tf.float32)
            attention_mask = tf.ones([batch_size, seq_length, 1], tf.float32) * to_mask
            sequence_output = bert_encoder.transformer_model(
                embedding_output, attention_mask=attention_mask, config=config,
                batch_size=batch_size, seq_length=seq_length, is_training=is_training)
        with tf.variable_scope("pooler"):
            first_token_tensor = tf.squeeze(sequence_output[:, 0:1, :], axis=1)
            pooled_output = tf.layers.dense(first_token_tensor, hidden_size, activation=tf.tanh,
                                            kernel_initializer=initializer)
    return sequence_output, pooled_output, embedding_table


def define_graph(config=DEFAULT_CONFIG):
    """Builds the inference graph; returns `(input_ids, sequence_output)`.

    `input_mask:0`, `segment_ids:0` and `pooled_output:0` are in the graph too.
    """
    tf = compat.import_tf_v1()
    config = get_config(config)
    input_ids = tf.placeholder(tf.int32, [None, SEQ_LENGTH], name="input_ids")
    input_mask = tf.placeholder(tf.int32, [None, SEQ_LENGTH], name="input_mask")
    segment_ids = tf.placeholder(tf.int32, [None, SEQ_LENGTH], name="segment_ids")
    is_training = tf.placeholder_with_default(False, [], name="is_training")
    sequence_output, pooled_output, _ = bert_model(input_ids, input_mask, segment_ids,
                                                   config=config, is_training=is_training)
    tf.identity(pooled_output, name=POOLED_OUTPUT_TENSOR.split(":")[0])
    return input_ids, tf.identity(sequence_output, name=OUTPUT_TENSOR.split(":")[0])


def pretraining_heads(sequence_output, pooled_output, embedding_table, *, config):
    """`run_pretraining.py`'s heads: `(masked LM logits, next sentence logits)`."""
    tf = compat.import_tf_v1()
    initializer = tf.truncated_normal_initializer(stddev=config.initializer_range)
    with tf.variable_scope("cls/predictions"):
        with tf.variable_scope("transform"):
            hidden = tf.layers.dense(tf.reshape(sequence_output, [-1, config.hidden_size]),
                                     config.hidden_size, activation=bert_encoder.gelu,
                                     kernel_initializer=initializer)
            hidden = bert_encoder.layer_norm(hidden)
        output_bias = tf.get_variable("output_bias", [config.vocab_size],
                                      initializer=tf.zeros_initializer())
        lm_logits = tf.nn.bias_add(tf.matmul(hidden, embedding_table, transpose_b=True),
                                   output_bias)
    with tf.variable_scope("cls/seq_relationship"):
        output_weights = tf.get_variable("output_weights", [2, config.hidden_size],
                                         initializer=initializer)
        output_bias = tf.get_variable("output_bias", [2], initializer=tf.zeros_initializer())
        next_sentence_logits = tf.nn.bias_add(
            tf.matmul(pooled_output, output_weights, transpose_b=True), output_bias)
    return lm_logits, next_sentence_logits


class AdamWeightDecayOptimizer:
    """`optimization.AdamWeightDecayOptimizer`: Adam with decoupled weight decay.

    Its slots are plain variables named `<variable>/adam_m` and
    `<variable>/adam_v`; LayerNorm and bias variables are not decayed.
    """

    def __init__(self, learning_rate, weight_decay_rate=WEIGHT_DECAY_RATE, beta_1=0.9,
                 beta_2=0.999, epsilon=1e-6):
        self.learning_rate = learning_rate
        self.weight_decay_rate = weight_decay_rate
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon

    def minimize(self, loss, global_step):
        tf = compat.import_tf_v1()
        variables = tf.trainable_variables()
        gradients = tf.gradients(loss, variables)
        assignments = []
        for gradient, variable in zip(gradients, variables):
            if gradient is None:
                continue
            name = re.match("^(.*):\\d+$", variable.name).group(1)
            m = tf.get_variable(name + "/adam_m", shape=variable.shape.as_list(),
                                dtype=tf.float32, trainable=False,
                                initializer=tf.zeros_initializer())
            v = tf.get_variable(name + "/adam_v", shape=variable.shape.as_list(),
                                dtype=tf.float32, trainable=False,
                                initializer=tf.zeros_initializer())
            next_m = self.beta_1 * m + (1.0 - self.beta_1) * gradient
            next_v = self.beta_2 * v + (1.0 - self.beta_2) * tf.square(gradient)
            update = next_m / (tf.sqrt(next_v) + self.epsilon)
            if not any(part in name for part in ("LayerNorm", "layer_norm", "bias")):
                update += self.weight_decay_rate * variable
            assignments.extend([variable.assign(variable - self.learning_rate * update),
                                m.assign(next_m), v.assign(next_v)])
        # run_pretraining.py increments global_step outside the optimizer.
        with tf.control_dependencies(assignments):
            return global_step.assign_add(1)


def write_config(output_dir, config):
    """Writes `bert_config.json` as the released checkpoints carry it."""
    document = {
        "attention_probs_dropout_prob": config.attention_probs_dropout_prob,
        "hidden_act": "gelu", "hidden_dropout_prob": config.hidden_dropout_prob,
        "hidden_size": config.hidden_size, "initializer_range": config.initializer_range,
        "intermediate_size": config.intermediate_size,
        "max_position_embeddings": config.max_position_embeddings,
        "num_attention_heads": config.num_attention_heads,
        "num_hidden_layers": config.num_hidden_layers,
        "type_vocab_size": config.type_vocab_size, "vocab_size": config.vocab_size,
    }
    with open(os.path.join(output_dir, CONFIG_FILE_NAME), "w", encoding="utf-8") as file:
        json.dump(document, file, indent=2)


def write_checkpoint(output_dir, *, steps=3, seed=0, config=DEFAULT_CONFIG):
    """Pre-trains a few steps (masked LM on every position, next sentence) and saves.

    Returns:
        The checkpoint prefix `output_dir/model.ckpt-<steps>`.
    """
    tf = compat.import_tf_v1()
    bert_config = get_config(config)

    def build():
        input_ids, sequence_output = define_graph(bert_config)
        graph = tf.get_default_graph()
        pooled_output = graph.get_tensor_by_name(POOLED_OUTPUT_TENSOR)
        with tf.variable_scope("bert/embeddings", reuse=True):
            embedding_table = tf.get_variable("word_embeddings")
        lm_logits, next_sentence_logits = pretraining_heads(
            sequence_output, pooled_output, embedding_table, config=bert_config)
        labels = tf.placeholder(tf.int32, [None, SEQ_LENGTH], name="masked_lm_ids")
        next_sentence_labels = tf.placeholder(tf.int32, [None], name="next_sentence_labels")
        loss = (tf.losses.sparse_softmax_cross_entropy(tf.reshape(labels, [-1]), lm_logits)
                + tf.losses.sparse_softmax_cross_entropy(next_sentence_labels,
                                                         next_sentence_logits))

        def make_feed(rng):
            shape = (BATCH_SIZE, SEQ_LENGTH)
            mask = (rng.random(shape) < 0.8).astype("int32")
            mask[:, 0] = 1
            return {
                input_ids: rng.integers(0, INPUT_MAX, shape).astype("int32"),
                graph.get_tensor_by_name(MASK_TENSOR): mask,
                graph.get_tensor_by_name(SEGMENT_TENSOR):
                    rng.integers(0, bert_config.type_vocab_size, shape).astype("int32"),
                labels: rng.integers(0, INPUT_MAX, shape).astype("int32"),
                next_sentence_labels: rng.integers(0, 2, BATCH_SIZE).astype("int32"),
                graph.get_tensor_by_name("is_training:0"): True,
            }

        return loss, make_feed

    prefix = training.train_and_save(
        output_dir=output_dir, build=build,
        optimizer=lambda: AdamWeightDecayOptimizer(LEARNING_RATE), steps=steps, seed=seed)
    write_config(output_dir, bert_config)
    return prefix
