"""PTB-style LSTM language model: Keras Embedding, two stacked LSTMs and a softmax Dense."""

import keras

from legacy_graphs import lstm_language_model as legacy


def build_model():
    """Returns the built Keras 3 twin of `legacy_graphs.lstm_language_model`.

    Layer names fix the weight paths the table targets:
    `embedding/embeddings`, `lstm_<n>/lstm_cell/{kernel,recurrent_kernel,bias}`
    and `softmax/{kernel,bias}`. The time dimension is left open, like the
    legacy placeholder's. The TF1 LSTMCell's forget_bias is folded into
    `lstm_<n>/lstm_cell/bias` by the table's `lstm` layout rule.

    Returns:
        A `keras.Model` from int32 tokens [batch, time] to logits
        [batch, time, vocabulary].
    """
    tokens = keras.Input(shape=(None,), dtype="int32", name="tokens")
    hidden = keras.layers.Embedding(legacy.VOCABULARY_SIZE, legacy.EMBEDDING_SIZE,
                                    name="embedding")(tokens)
    hidden = keras.layers.Dropout(legacy.DROPOUT_RATE, name="embedding_dropout")(hidden)
    for layer in range(legacy.LAYERS):
        hidden = keras.layers.LSTM(legacy.UNITS, return_sequences=True,
                                   name=f"lstm_{layer}")(hidden)
    hidden = keras.layers.Dropout(legacy.DROPOUT_RATE, name="output_dropout")(hidden)
    logits = keras.layers.Dense(legacy.VOCABULARY_SIZE, name="softmax")(hidden)
    return keras.Model(tokens, logits, name=legacy.NAME)
