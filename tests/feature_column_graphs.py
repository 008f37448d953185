"""A DNN classifier over feature columns, built as tf.estimator's DNNClassifier builds it.

The graph parses serialized `tf.train.Example`s (the Estimator's tf.Example
serving signature), feeds them to `tf.compat.v1.feature_column.input_layer`
under `dnn/input_from_feature_columns` (numeric with a normalizer, bucketized
-> indicator, vocabulary list with OOV buckets -> embedding, hash bucket ->
embedding: the input layer concatenates them sorted by name), then a hidden
layer and logits named as the Estimator names them. `write` saves a
checkpoint with its `.meta` (a model_dir) and a TF1 SavedModel export whose
main op initializes the vocabulary table; `keras_twin` is the model a user
writes by hand with Keras preprocessing layers.
"""

import os

import numpy as np

COLOR_VOCABULARY = ("red", "green", "blue")
COLOR_OOV_BUCKETS = 2
CITY_BUCKETS = 7
HOURS_BOUNDARIES = (10.0, 20.0, 40.0)
HIDDEN_UNITS = 5
CLASSES = 3


def _columns(tf):
    fc = tf.compat.v1.feature_column
    age = fc.numeric_column("age", normalizer_fn=lambda x: (x - 40.0) / 10.0)
    hours = fc.bucketized_column(fc.numeric_column("hours"), list(HOURS_BOUNDARIES))
    color = fc.categorical_column_with_vocabulary_list(
        "color", list(COLOR_VOCABULARY), num_oov_buckets=COLOR_OOV_BUCKETS)
    city = fc.categorical_column_with_hash_bucket("city", CITY_BUCKETS)
    return [age, fc.indicator_column(hours), fc.embedding_column(color, 3),
            fc.embedding_column(city, 2)]


def _define(tf, *, raw=False):
    """Builds the serving graph in the default graph; returns `(inputs, logits, probabilities)`.

    `inputs` is `{"examples": serialized tf.Example placeholder}`, or with
    `raw` one placeholder per feature (an Estimator's raw serving input).
    """
    v1 = tf.compat.v1
    columns = _columns(tf)
    if raw:
        features = {name: v1.placeholder(tf.string if name in ("color", "city") else tf.float32,
                                         [None, 1], name=name)
                    for name in ("age", "hours", "color", "city")}
        inputs = dict(features)
    else:
        examples = v1.placeholder(tf.string, [None], name="input_example_tensor")
        features = v1.io.parse_example(examples,
                                       v1.feature_column.make_parse_example_spec(columns))
        inputs = {"examples": examples}
    with v1.variable_scope("dnn"):
        with v1.variable_scope("input_from_feature_columns"):
            net = v1.feature_column.input_layer(features, columns)
        for name, units in (("hiddenlayer_0", HIDDEN_UNITS), ("logits", CLASSES)):
            with v1.variable_scope(name):
                kernel = v1.get_variable("kernel", [net.shape[-1], units])
                bias = v1.get_variable("bias", [units],
                                       initializer=v1.random_normal_initializer(stddev=0.1))
                net = tf.matmul(net, kernel) + bias
                if name != "logits":
                    net = tf.nn.relu(net)
    logits = tf.identity(net, name="logits")
    return inputs, logits, tf.nn.softmax(logits, name="probabilities")


def write(directory):
    """Writes `directory/model_dir/model.ckpt-1` (with `.meta`), and `directory/export/1`
    (tf.Example signature) and `directory/raw_export/1` (raw features), as an Estimator does.

    Returns:
        `(checkpoint prefix, tf.Example export, raw-feature export)`.
    """
    import tensorflow as tf

    v1 = tf.compat.v1
    prefix = os.path.join(directory, "model_dir", "model.ckpt-1")
    exports = [os.path.join(directory, "export", "1"), os.path.join(directory, "raw_export", "1")]
    graph = tf.Graph()
    with graph.as_default():
        v1.set_random_seed(3)
        inputs, logits, probabilities = _define(tf)
        v1.train.get_or_create_global_step()
        saver = v1.train.Saver()
        with v1.Session() as session:
            session.run([v1.global_variables_initializer(), v1.tables_initializer()])
            os.makedirs(os.path.dirname(prefix), exist_ok=True)
            saver.save(session, prefix[:-2], global_step=1)
            _export(v1, session, exports[0], inputs, logits, probabilities)
    with tf.Graph().as_default():
        inputs, logits, probabilities = _define(tf, raw=True)
        with v1.Session() as session:
            v1.train.Saver().restore(session, prefix)
            _export(v1, session, exports[1], inputs, logits, probabilities)
    return (prefix, *exports)


def _export(v1, session, directory, inputs, logits, probabilities):
    """A TF1 SavedModel whose main op initializes the tables, as an Estimator's export."""
    builder = v1.saved_model.Builder(directory)
    signature = v1.saved_model.predict_signature_def(
        inputs, {"logits": logits, "probabilities": probabilities})
    builder.add_meta_graph_and_variables(
        session, ["serve"], signature_def_map={"serving_default": signature},
        main_op=v1.tables_initializer())
    builder.save()


def keras_twin():
    """The Keras 3 model a user writes for the same columns, outputs named as the signature's."""
    import keras

    inputs = {"age": keras.Input((1,), name="age"), "hours": keras.Input((1,), name="hours"),
              "color": keras.Input((1,), dtype="string", name="color"),
              "city": keras.Input((1,), dtype="string", name="city")}
    age = keras.layers.Rescaling(0.1, offset=-4.0)(inputs["age"])
    city = keras.layers.Hashing(CITY_BUCKETS)(inputs["city"])
    city = keras.layers.Flatten()(keras.layers.Embedding(CITY_BUCKETS, 2,
                                                         name="city_embedding")(city))
    color = keras.layers.StringLookup(vocabulary=list(COLOR_VOCABULARY),
                                      num_oov_indices=COLOR_OOV_BUCKETS)(inputs["color"])
    color = keras.layers.Flatten()(keras.layers.Embedding(
        len(COLOR_VOCABULARY) + COLOR_OOV_BUCKETS, 3, name="color_embedding")(color))
    hours = keras.layers.Discretization(bin_boundaries=list(HOURS_BOUNDARIES))(inputs["hours"])
    hours = keras.layers.CategoryEncoding(len(HOURS_BOUNDARIES) + 1,
                                          output_mode="one_hot")(hours)
    net = keras.layers.Concatenate()([age, city, color, hours])
    net = keras.layers.Dense(HIDDEN_UNITS, activation="relu", name="hiddenlayer_0")(net)
    logits = keras.layers.Dense(CLASSES, name="logits")(net)
    probabilities = keras.layers.Softmax(name="probabilities")(logits)
    return keras.Model(inputs, {"logits": logits, "probabilities": probabilities})


def rows():
    """Raw rows with every vocabulary value, OOV values and every hours bucket."""
    return {"age": np.array([[25.0], [40.0], [61.5], [33.0], [48.0]], np.float32),
            "hours": np.array([[5.0], [15.0], [30.0], [45.0], [12.0]], np.float32),
            "color": np.array([["red"], ["green"], ["blue"], ["purple"], ["teal"]], str),
            "city": np.array([["Paris"], ["Lagos"], ["Lima"], ["Oslo"], ["Pune"]], str)}


# The columns of tests/data/estimators/dnn_classifier (scripts/make_estimator_artifacts.py).
ESTIMATOR_COLORS = ("red", "green", "blue", "yellow")
ESTIMATOR_HOURS_BOUNDARIES = (10.0, 20.0, 40.0)


def dnn_classifier_twin():
    """The Keras 3 twin a user writes by hand for the TF 2.15 DNNClassifier artifact.

    Each column as the input layer computes it for one value per feature
    (an embedding's combiner over one id is that id's row), concatenated in
    the input layer's order: the columns sorted by name.
    """
    import keras

    layers = keras.layers
    inputs = {name: keras.Input((1,), name=name) for name in ("age", "income", "hours")}
    inputs.update({name: keras.Input((1,), dtype="string", name=name)
                   for name in ("color", "city", "tags")})

    def embedded(ids, rows, dimension, name):
        return layers.Flatten()(layers.Embedding(rows, dimension, name=name)(ids))

    color = layers.StringLookup(vocabulary=list(ESTIMATOR_COLORS), num_oov_indices=2)
    hours = layers.Discretization(bin_boundaries=list(ESTIMATOR_HOURS_BOUNDARIES))
    columns = [
        inputs["age"],
        embedded(layers.Hashing(16)(inputs["city"]), 16, 2, "city_embedding"),
        embedded(color(inputs["color"]), len(ESTIMATOR_COLORS) + 2, 3, "color_embedding"),
        layers.CategoryEncoding(len(ESTIMATOR_HOURS_BOUNDARIES) + 1,
                                output_mode="one_hot")(hours(inputs["hours"])),
        layers.Rescaling(0.5, offset=-1.5)(inputs["income"]),
        embedded(layers.Hashing(8)(inputs["tags"]), 8, 2, "tags_embedding"),
    ]
    net = layers.Concatenate()(columns)
    for index, units in enumerate((8, 6)):
        net = layers.Dense(units, activation="relu", name=f"hiddenlayer_{index}")(net)
    logits = layers.Dense(3, name="logits")(net)
    probabilities = layers.Softmax(name="probabilities")(logits)
    return keras.Model(inputs, {"logits": logits, "probabilities": probabilities})
