"""BiLSTM sequence tagger: Keras Embedding, Bidirectional(LSTM) and a per-step Dense."""

import keras

from legacy_graphs import bilstm_tagger as legacy


def build_model():
    """Returns the built Keras 3 twin of `legacy_graphs.bilstm_tagger`.

    Layer names fix the weight paths the table targets: `embedding/embeddings`,
    `bilstm/forward_lstm/lstm_cell/...`, `bilstm/backward_lstm/lstm_cell/...`
    (Keras 3 names a Bidirectional's copies `forward_<name>` and
    `backward_<name>` after the wrapped layer) and `tags/{kernel,bias}`.
    Keras concatenates [forward, backward] with the backward outputs in time
    order, as `tf.concat(bidirectional_dynamic_rnn(...)[0], -1)` does.

    Returns:
        A `keras.Model` from int32 tokens [batch, time] to logits
        [batch, time, tags].
    """
    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    hidden = keras.layers.Embedding(legacy.VOCABULARY_SIZE, legacy.EMBEDDING_SIZE,
                                    name="embedding")(tokens)
    hidden = keras.layers.Dropout(legacy.DROPOUT_RATE, name="embedding_dropout")(hidden)
    hidden = keras.layers.Bidirectional(
        keras.layers.LSTM(legacy.UNITS, return_sequences=True, name="lstm"),
        merge_mode="concat", name="bilstm")(hidden)
    hidden = keras.layers.Dropout(legacy.DROPOUT_RATE, name="output_dropout")(hidden)
    logits = keras.layers.Dense(legacy.TAGS, name="tags")(hidden)
    return keras.Model(tokens, logits, name=legacy.NAME)
