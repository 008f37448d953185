"""OpenAI's GPT-2 as its authors' `src/model.py` builds it, variable for variable (MIT license).

The same scopes and names (`model/wte`, `model/wpe`, `model/h0/ln_1/g`,
`model/h0/attn/c_attn/w` of shape `[1, d, 3d]`, `c_proj`, `mlp/c_fc`,
`ln_f`), the same ops: a "conv1d" that is a matmul on reshaped operands,
the fused query/key/value projection cut by `tf.split`, the hand-written
softmax and layer norm (`rsqrt` of the variance), the causal mask, the
tanh GELU, and the output projection tied to `wte`. `wpe` is created before
`wte`, as in the original. Written for TF 2.21's `tf.compat.v1`; `past`
(the key/value cache of sampling) is left out: the forward pass over a
whole sequence does not read it.
"""

import dataclasses

import numpy as np

from legacy_graphs import compat
from legacy_graphs import training

NAME = "gpt2"
INPUT_TENSOR = "tokens:0"
# The last layer norm's output: what keras-hub's GPT2Backbone returns.
OUTPUT_TENSOR = "hidden:0"
LOGITS_TENSOR = "logits:0"
INPUT_SHAPE = (8,)
INPUT_DTYPE = "int32"
BATCH_SIZE = 4
LEARNING_RATE = 1e-3
LAYER_NORM_EPSILON = 1e-5


@dataclasses.dataclass(frozen=True)
class HParams:
    """GPT-2's hyperparameters, named as in its `hparams.json`."""

    n_vocab: int
    n_ctx: int
    n_embd: int
    n_head: int
    n_layer: int


CONFIGS = {
    "tiny": HParams(n_vocab=50, n_ctx=16, n_embd=16, n_head=2, n_layer=2),
    "124M": HParams(n_vocab=50257, n_ctx=1024, n_embd=768, n_head=12, n_layer=12),
}
DEFAULT_CONFIG = "tiny"
INPUT_MAX = CONFIGS[DEFAULT_CONFIG].n_vocab


def get_config(config=DEFAULT_CONFIG):
    """Returns the `HParams` preset called `config` (or `config` itself when it is one)."""
    import legacy_graphs

    if isinstance(config, HParams):
        return config
    return legacy_graphs.preset(NAME, CONFIGS, config)


def _shape_list(x):
    tf = compat.import_tf_v1()
    static = x.shape.as_list()
    dynamic = tf.shape(x)
    return [dynamic[index] if size is None else size for index, size in enumerate(static)]


def _softmax(x, axis=-1):
    tf = compat.import_tf_v1()
    x = x - tf.reduce_max(x, axis=axis, keepdims=True)
    exponentials = tf.exp(x)
    return exponentials / tf.reduce_sum(exponentials, axis=axis, keepdims=True)


def _gelu(x):
    tf = compat.import_tf_v1()
    return 0.5 * x * (1 + tf.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * tf.pow(x, 3))))


def _norm(x, scope, *, axis=-1, epsilon=LAYER_NORM_EPSILON):
    """Layer norm with scale `g` and offset `b`, through the variance's `rsqrt`."""
    tf = compat.import_tf_v1()
    with tf.variable_scope(scope):
        n_state = tf.compat.dimension_value(x.shape[-1])
        g = tf.get_variable("g", [n_state], initializer=tf.constant_initializer(1))
        b = tf.get_variable("b", [n_state], initializer=tf.constant_initializer(0))
        mean = tf.reduce_mean(x, axis=axis, keepdims=True)
        centred = x - mean
        variance = tf.reduce_mean(tf.square(centred), axis=axis, keepdims=True)
        x = centred * tf.rsqrt(variance + epsilon)
        return x * g + b


def _split_states(x, n):
    tf = compat.import_tf_v1()
    *start, m = _shape_list(x)
    return tf.reshape(x, start + [n, m // n])


def _merge_states(x):
    tf = compat.import_tf_v1()
    *start, a, b = _shape_list(x)
    return tf.reshape(x, start + [a * b])


def _conv1d(x, scope, nf, *, w_init_stdev=0.02):
    """A dense layer kept as a `[1, nx, nf]` convolution kernel, applied as a matmul."""
    tf = compat.import_tf_v1()
    with tf.variable_scope(scope):
        *start, nx = _shape_list(x)
        w = tf.get_variable("w", [1, nx, nf],
                            initializer=tf.random_normal_initializer(stddev=w_init_stdev))
        b = tf.get_variable("b", [nf], initializer=tf.constant_initializer(0))
        product = tf.matmul(tf.reshape(x, [-1, nx]), tf.reshape(w, [-1, nf])) + b
        return tf.reshape(product, start + [nf])


def _attention_mask(nd, ns, *, dtype):
    """Ones in the lower triangle, counted from the lower right corner."""
    tf = compat.import_tf_v1()
    i = tf.range(nd)[:, None]
    j = tf.range(ns)
    return tf.cast(i >= j - ns + nd, dtype)


def _attn(x, scope, n_state, *, hparams):
    tf = compat.import_tf_v1()

    def split_heads(tensor):
        return tf.transpose(_split_states(tensor, hparams.n_head), [0, 2, 1, 3])

    def merge_heads(tensor):
        return _merge_states(tf.transpose(tensor, [0, 2, 1, 3]))

    def mask_attn_weights(w):
        _, _, nd, ns = _shape_list(w)
        b = tf.reshape(_attention_mask(nd, ns, dtype=w.dtype), [1, 1, nd, ns])
        return w * b - tf.cast(1e10, w.dtype) * (1 - b)

    def multihead_attn(q, k, v):
        w = tf.matmul(q, k, transpose_b=True)
        w = w * tf.rsqrt(tf.cast(tf.compat.dimension_value(v.shape[-1]), w.dtype))
        w = _softmax(mask_attn_weights(w))
        return tf.matmul(w, v)

    with tf.variable_scope(scope):
        c = _conv1d(x, "c_attn", n_state * 3)
        q, k, v = map(split_heads, tf.split(c, 3, axis=2))
        a = merge_heads(multihead_attn(q, k, v))
        return _conv1d(a, "c_proj", n_state)


def _mlp(x, scope, n_state):
    tf = compat.import_tf_v1()
    with tf.variable_scope(scope):
        nx = tf.compat.dimension_value(x.shape[-1])
        return _conv1d(_gelu(_conv1d(x, "c_fc", n_state)), "c_proj", nx)


def _block(x, scope, *, hparams):
    tf = compat.import_tf_v1()
    with tf.variable_scope(scope):
        nx = tf.compat.dimension_value(x.shape[-1])
        x = x + _attn(_norm(x, "ln_1"), "attn", nx, hparams=hparams)
        return x + _mlp(_norm(x, "ln_2"), "mlp", nx * 4)


def model(hparams, tokens, scope="model"):
    """GPT-2's forward pass over `tokens` `[batch, sequence]`.

    Returns:
        `(hidden, logits)`: the last layer norm's output `[batch, sequence,
        n_embd]` and the tied output projection `[batch, sequence, n_vocab]`.
    """
    tf = compat.import_tf_v1()
    with tf.variable_scope(scope):
        batch, sequence = _shape_list(tokens)
        wpe = tf.get_variable("wpe", [hparams.n_ctx, hparams.n_embd],
                              initializer=tf.random_normal_initializer(stddev=0.01))
        wte = tf.get_variable("wte", [hparams.n_vocab, hparams.n_embd],
                              initializer=tf.random_normal_initializer(stddev=0.02))
        positions = tf.tile(tf.expand_dims(tf.range(sequence), axis=0), [batch, 1])
        h = tf.gather(wte, tokens) + tf.gather(wpe, positions)
        for layer in range(hparams.n_layer):
            h = _block(h, f"h{layer}", hparams=hparams)
        h = _norm(h, "ln_f")
        flat = tf.reshape(h, [batch * sequence, hparams.n_embd])
        logits = tf.matmul(flat, wte, transpose_b=True)
        return h, tf.reshape(logits, [batch, sequence, hparams.n_vocab])


def define_graph(config=DEFAULT_CONFIG):
    """Builds the inference graph in the current default graph.

    Returns:
        `(tokens, hidden)`: the `[None, None]` int32 placeholder and the last
        layer norm's output; the logits are `LOGITS_TENSOR`.
    """
    tf = compat.import_tf_v1()
    tokens = tf.placeholder(tf.int32, [None, None], name=INPUT_TENSOR.split(":")[0])
    hidden, logits = model(get_config(config), tokens)
    tf.identity(logits, name=LOGITS_TENSOR.split(":")[0])
    return tokens, tf.identity(hidden, name=OUTPUT_TENSOR.split(":")[0])


def write_checkpoint(output_dir, *, steps=2, seed=0, config=DEFAULT_CONFIG):
    """Trains the language model with Adam on seeded random tokens and saves it.

    Args:
        output_dir: directory that receives `model.ckpt-<steps>.*`.
        steps: number of training steps.
        seed: graph and data random seed.
        config: a preset name from `CONFIGS`.

    Returns:
        The checkpoint prefix.
    """
    tf = compat.import_tf_v1()
    hparams = get_config(config)

    def build():
        tokens, _ = define_graph(hparams)
        logits = tf.get_default_graph().get_tensor_by_name(LOGITS_TENSOR)
        # Tokens < n predict token n, as GPT-2's training does.
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=tokens[:, 1:], logits=logits[:, :-1]))

        def make_feed(rng):
            return {tokens: rng.integers(0, hparams.n_vocab, (BATCH_SIZE, INPUT_SHAPE[0]))
                    .astype("int32")}

        return loss, make_feed

    return training.train_and_save(
        output_dir=output_dir, build=build,
        optimizer=lambda: tf.train.AdamOptimizer(LEARNING_RATE), steps=steps, seed=seed)
