"""Writes the canned-Estimator test data with TensorFlow 2.15's own `tf.estimator`.

RUNS ONLY IN A SEPARATE VIRTUALENV, never in the project's one: `tf.estimator`
is gone since TensorFlow 2.16.

    python3.11 -m venv ../venv-tf215
    ../venv-tf215/bin/pip install tensorflow==2.15.1 tensorflow-estimator==2.15.0
    ../venv-tf215/bin/python scripts/make_estimator_artifacts.py [--output=tests/data/estimators]

For each estimator (DNNRegressor, a 3-class DNNClassifier, a binary
LinearClassifier with a crossed column, a binary DNNLinearCombinedClassifier,
a LinearRegressor with the other columns: integer vocabulary, integer hash
bucket, identity with a default, a vocabulary without OOV buckets, a cross of
raw features, a numeric column of two values; and a 3-class
DNNLinearCombinedClassifier as TensorFlow 1.x wrote them, with
tf.compat.v1.estimator and feature columns v1, its model_dir only)
it trains a few steps on synthetic data with fixed seeds and writes, under
OUTPUT/<name>/:

  model_dir/            the final checkpoint only and its .meta (graph.pbtxt
                        too for dnn_classifier; no events files, no eval
                        directory)
  export/example/1/     a SavedModel whose signature parses serialized
                        tf.train.Examples (build_parsing_serving_input_receiver_fn)
  export/raw/1/         a SavedModel fed raw features by name
                        (build_raw_serving_input_receiver_fn)
  predictions.json      fixed rows (out-of-vocabulary values, values on every
                        bucket boundary, empty multivalent slots) and the
                        estimator's own `predict` outputs for them

The vocabulary-file column of the combined classifier names a file under the
training machine's temporary directory, absent from the model_dir as in real
model directories; the file is also copied next to model_dir, as
`vocabularies/occupation.txt`, so a test can supply it.
"""

import json
import os
import shutil
import sys
import tempfile

from absl import app
from absl import flags

import numpy as np
import tensorflow as tf

_OUTPUT = flags.DEFINE_string(
    "output", "tests/data/estimators", "Directory the artifacts are written to."
)
_STEPS = flags.DEFINE_integer("steps", 30, "Training steps per estimator.")

_COLORS = ["red", "green", "blue", "yellow"]
_OCCUPATIONS = ["clerk", "driver", "nurse", "teacher", "welder"]
_CITIES = ["paris", "lima", "oslo", "kyiv", "quito", "accra", "hanoi", "perth"]
_TAGS = ["a", "b", "c", "d", "e", "f"]
_HOURS_BOUNDARIES = [10.0, 20.0, 40.0]


def _synthetic_rows(count, seed):
    """Training rows: every feature any estimator uses, as dense arrays."""
    rng = np.random.RandomState(seed)
    tags = rng.choice(_TAGS + [""], size=(count, 2))
    return {
        "age": rng.uniform(18, 80, size=(count, 1)).astype(np.float32),
        "income": rng.uniform(0, 8, size=(count, 1)).astype(np.float32),
        "hours": rng.uniform(0, 60, size=(count, 1)).astype(np.float32),
        "color": rng.choice(_COLORS, size=(count, 1)),
        "city": rng.choice(_CITIES, size=(count, 1)),
        "tags": tags,
        "weekday": rng.randint(0, 7, size=(count, 1)).astype(np.int64),
        "occupation": rng.choice(_OCCUPATIONS, size=(count, 1)),
        "size": rng.uniform(0, 4, size=(count, 2)).astype(np.float32),
        "zipcode": rng.choice([75001, 10115, 1010, 8001], size=(count, 1)).astype(np.int64),
        "store": rng.randint(0, 500, size=(count, 1)).astype(np.int64),
        "shelf": rng.randint(0, 12, size=(count, 1)).astype(np.int64),
        "grade": rng.choice(["A", "B", "C", ""], size=(count, 1)),
    }


def _fixed_rows():
    """The rows predictions are saved for: in and out of every vocabulary."""
    return {
        "age": np.array([[25.0], [40.5], [63.0], [18.0], [79.0], [33.0]], np.float32),
        "income": np.array([[1.0], [3.0], [7.5], [0.0], [5.0], [2.5]], np.float32),
        # Below, on and above every boundary (a value on a boundary goes up).
        "hours": np.array([[5.0], [10.0], [20.0], [39.99], [40.0], [55.0]], np.float32),
        "color": np.array([["red"], ["blue"], ["purple"], ["yellow"], ["green"], ["black"]]),
        "city": np.array([["paris"], ["tokyo"], ["oslo"], [""], ["nairobi"], ["lima"]]),
        "tags": np.array([["a", "b"], ["c", ""], ["zz", "d"], ["", ""], ["f", "f"], ["e", "q"]]),
        "weekday": np.array([[0], [3], [6], [1], [5], [2]], np.int64),
        "occupation": np.array(
            [["nurse"], ["pilot"], ["clerk"], ["welder"], ["chef"], ["driver"]]
        ),
        "size": np.array([[0.5, 1.0], [2.0, 3.5], [1.0, 0.0], [3.0, 3.0], [0.0, 2.5],
                          [4.0, 1.5]], np.float32),
        # 99999 and 12345 are in no vocabulary: OOV buckets.
        "zipcode": np.array([[75001], [99999], [1010], [12345], [8001], [10115]], np.int64),
        "store": np.array([[3], [77], [499], [0], [123], [42]], np.int64),
        # 12 and 40 are out of the identity column's range: its default.
        "shelf": np.array([[0], [11], [12], [5], [40], [3]], np.int64),
        # "D" is no grade (dropped: no OOV bucket, no default), "" is missing.
        "grade": np.array([["A"], ["D"], ["C"], [""], ["B"], ["A"]]),
    }


def _labels(rows, kind):
    score = (rows["age"][:, 0] / 40.0 + rows["income"][:, 0] / 4.0
             + (rows["color"][:, 0] == "red") - (rows["hours"][:, 0] > 30))
    if kind == "regressor":
        return score.astype(np.float32).reshape(-1, 1)
    if kind == "binary":
        return (score > 1.5).astype(np.int64).reshape(-1, 1)
    return np.digitize(score, [1.0, 2.0]).astype(np.int64).reshape(-1, 1)


def _dnn_columns(fc):
    hours = fc.bucketized_column(
        fc.numeric_column("hours"), boundaries=_HOURS_BOUNDARIES)
    color = fc.categorical_column_with_vocabulary_list(
        "color", vocabulary_list=_COLORS, num_oov_buckets=2)
    city = fc.categorical_column_with_hash_bucket("city", hash_bucket_size=16)
    tags = fc.categorical_column_with_hash_bucket("tags", hash_bucket_size=8)
    return [
        fc.numeric_column("age"),
        fc.numeric_column("income", normalizer_fn=lambda x: (x - 3.0) / 2.0),
        fc.indicator_column(hours),
        fc.embedding_column(color, dimension=3),
        fc.embedding_column(city, dimension=2, combiner="sqrtn"),
        fc.embedding_column(tags, dimension=2, combiner="mean"),
    ]


def _estimators(fc, workdir):
    """(name, kind, estimator factory, feature columns) for every artifact."""
    occupation_file = os.path.join(workdir, "vocabularies", "occupation.txt")
    os.makedirs(os.path.dirname(occupation_file), exist_ok=True)
    with open(occupation_file, "w") as f:
        f.write("\n".join(_OCCUPATIONS) + "\n")

    hours = fc.bucketized_column(
        fc.numeric_column("hours"), boundaries=_HOURS_BOUNDARIES)
    color = fc.categorical_column_with_vocabulary_list(
        "color", vocabulary_list=_COLORS, num_oov_buckets=1)
    weekday = fc.categorical_column_with_identity("weekday", num_buckets=7)
    occupation = fc.categorical_column_with_vocabulary_file(
        "occupation", vocabulary_file=occupation_file, num_oov_buckets=1)
    linear_columns = [
        fc.numeric_column("age"),
        hours,
        color,
        weekday,
        fc.crossed_column([color, hours], hash_bucket_size=24),
    ]
    wide_columns = [
        hours,
        fc.categorical_column_with_vocabulary_list(
            "color", vocabulary_list=_COLORS, default_value=0),
        weekday,
    ]
    deep_columns = [
        fc.numeric_column("age"),
        fc.embedding_column(occupation, dimension=2),
        fc.indicator_column(weekday),
    ]
    config = lambda d: tf.estimator.RunConfig(
        model_dir=d, tf_random_seed=42, keep_checkpoint_max=1,
        save_summary_steps=1000000, log_step_count_steps=1000000)
    regressor_columns = [
        fc.numeric_column("size", shape=(2,), normalizer_fn=lambda x: x * 0.25 + 1.0),
        fc.categorical_column_with_vocabulary_list(
            "zipcode", vocabulary_list=[75001, 10115, 1010, 8001], num_oov_buckets=2),
        fc.categorical_column_with_hash_bucket("store", hash_bucket_size=10, dtype=tf.int64),
        fc.categorical_column_with_identity("shelf", num_buckets=12, default_value=0),
        fc.categorical_column_with_vocabulary_list("grade", vocabulary_list=["A", "B", "C"]),
        # Keys given as raw features: the cross hashes their strings itself.
        fc.crossed_column(["grade", "color"], hash_bucket_size=16),
    ]
    return [
        ("linear_regressor", "regressor",
         lambda d: tf.estimator.LinearRegressor(
             feature_columns=regressor_columns, optimizer="Ftrl", config=config(d)),
         regressor_columns),
        ("dnn_regressor", "regressor",
         lambda d: tf.estimator.DNNRegressor(
             hidden_units=[8, 4], feature_columns=_dnn_columns(fc),
             config=config(d)),
         _dnn_columns(fc)),
        ("dnn_classifier", "multiclass",
         lambda d: tf.estimator.DNNClassifier(
             hidden_units=[8, 6], n_classes=3, feature_columns=_dnn_columns(fc),
             optimizer="Adam", activation_fn=tf.nn.relu, config=config(d)),
         _dnn_columns(fc)),
        ("linear_classifier", "binary",
         lambda d: tf.estimator.LinearClassifier(
             feature_columns=linear_columns, config=config(d)),
         linear_columns),
        ("dnn_linear_combined_classifier", "binary",
         lambda d: tf.estimator.DNNLinearCombinedClassifier(
             linear_feature_columns=wide_columns,
             dnn_feature_columns=deep_columns, dnn_hidden_units=[6, 4],
             dnn_activation_fn=tf.nn.elu, config=config(d)),
         wide_columns + deep_columns),
        _v1_estimator(),
    ]


# The estimator written as TensorFlow 1.x wrote them: tf.compat.v1.estimator with
# feature columns v1 (scopes without `_1`, heads under dnn/head/); no exports.
V1_NAME = "v1_dnn_linear_combined_classifier"


def _v1_estimator():
    fc = tf.compat.v1.feature_column
    hours = fc.bucketized_column(fc.numeric_column("hours"), boundaries=_HOURS_BOUNDARIES)
    color = fc.categorical_column_with_vocabulary_list(
        "color", vocabulary_list=_COLORS, num_oov_buckets=1)
    deep = [
        fc.numeric_column("income", normalizer_fn=lambda x: (x - 3.0) / 2.0),
        fc.embedding_column(color, dimension=2),
        fc.indicator_column(hours),
    ]
    wide = [color, hours, fc.crossed_column([color, hours], hash_bucket_size=12)]
    return (V1_NAME, "multiclass",
            lambda d: tf.compat.v1.estimator.DNNLinearCombinedClassifier(
                linear_feature_columns=wide, dnn_feature_columns=deep,
                dnn_hidden_units=[4], n_classes=3,
                config=tf.estimator.RunConfig(model_dir=d, tf_random_seed=42,
                                              keep_checkpoint_max=1)),
            wide + deep)


def _used_features(columns, rows):
    spec = tf.compat.v1.feature_column.make_parse_example_spec(columns)
    return {name: rows[name] for name in sorted(spec)}


def _write_one(name, kind, make_estimator, columns, workdir, output):
    model_dir = os.path.join(workdir, name)
    estimator = make_estimator(model_dir)
    train = _used_features(columns, _synthetic_rows(256, seed=7))
    labels = _labels(_synthetic_rows(256, seed=7), kind)

    def train_input():
        data = tf.data.Dataset.from_tensor_slices((train, labels))
        return data.shuffle(256, seed=3).repeat().batch(32)

    estimator.train(train_input, steps=_STEPS.value)

    rows = _used_features(columns, _fixed_rows())
    outputs = list(estimator.predict(
        lambda: tf.data.Dataset.from_tensor_slices(rows).batch(len(_fixed_rows()["age"]))))
    keys = ("logits", "probabilities") if kind != "regressor" else ("predictions",)
    predictions = {
        key: np.stack([out[key] for out in outputs]).astype(float).tolist()
        for key in keys
    }

    target = os.path.join(output, name)
    shutil.rmtree(target, ignore_errors=True)
    os.makedirs(target)
    exports = {} if name == V1_NAME else {
        "example": tf.estimator.export.build_parsing_serving_input_receiver_fn(
            tf.feature_column.make_parse_example_spec(columns)),
        # Eager tensors give the placeholders' dtypes and shapes (batch free).
        "raw": tf.estimator.export.build_raw_serving_input_receiver_fn(
            {key: tf.constant(value) for key, value in rows.items()}),
    }
    for export_name, receiver in exports.items():
        written = estimator.export_saved_model(
            os.path.join(workdir, "export", name, export_name), receiver)
        shutil.copytree(written.decode() if isinstance(written, bytes) else written,
                        os.path.join(target, "export", export_name, "1"))

    kept = os.path.join(target, "model_dir")
    os.makedirs(kept)
    newest = tf.train.latest_checkpoint(model_dir)
    for entry in os.listdir(model_dir):
        path = os.path.join(model_dir, entry)
        # graph.pbtxt repeats the .meta's graph (about 1 MB): kept for one.
        keep_text_graph = entry == "graph.pbtxt" and name == "dnn_classifier"
        if entry.startswith(os.path.basename(newest) + ".") or keep_text_graph:
            shutil.copy(path, kept)
    with open(os.path.join(kept, "checkpoint"), "w") as f:
        f.write('model_checkpoint_path: "%s"\n' % os.path.basename(newest))
        f.write('all_model_checkpoint_paths: "%s"\n' % os.path.basename(newest))
    if name == "dnn_linear_combined_classifier":
        shutil.copytree(os.path.join(workdir, "vocabularies"),
                        os.path.join(target, "vocabularies"))

    with open(os.path.join(target, "predictions.json"), "w") as f:
        json.dump({
            "estimator": name,
            "tensorflow": tf.__version__,
            "rows": {k: v.tolist() for k, v in rows.items()},
            "outputs": predictions,
        }, f, indent=1)
    print("wrote", target, file=sys.stderr)


def main(argv):
    del argv
    tf.compat.v1.logging.set_verbosity(tf.compat.v1.logging.ERROR)
    output = os.path.abspath(_OUTPUT.value)
    fc = tf.feature_column
    with tempfile.TemporaryDirectory(prefix="estimators-") as workdir:
        for name, kind, make_estimator, columns in _estimators(fc, workdir):
            tf.random.set_seed(42)
            np.random.seed(42)
            _write_one(name, kind, make_estimator, columns, workdir, output)


if __name__ == "__main__":
    app.run(main)
