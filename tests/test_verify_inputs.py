"""verify on any graph: several inputs, constant feeds, arrays from a file, no guessed shapes."""

import numpy as np
import pytest

import verify_graphs

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def bert_style(tmp_path_factory):
    directory = tmp_path_factory.mktemp("bert_style")
    prefix = verify_graphs.save_graph(directory, verify_graphs.build_bert_style)
    table = verify_graphs.write_table(directory / "table.toml", verify_graphs.BERT_STYLE_TABLE)
    model = verify_graphs.convert_and_restore(prefix, table, verify_graphs.bert_style_model,
                                              directory / "converted")
    return prefix, model


@pytest.fixture(scope="module")
def char_rnn(tmp_path_factory):
    directory = tmp_path_factory.mktemp("char_rnn")
    prefix = verify_graphs.save_graph(directory, verify_graphs.build_char_rnn)
    table = verify_graphs.write_table(directory / "table.toml", verify_graphs.CHAR_RNN_TABLE)
    model = verify_graphs.convert_and_restore(prefix, table, verify_graphs.char_rnn_model,
                                              directory / "converted")
    return prefix, model


def test_two_input_bert_style_graph_verifies_with_each_input_fed(bert_style):
    import migrate

    prefix, model = bert_style
    # The placeholders are found in the graph and matched to the Keras inputs by name.
    report = migrate.verify(prefix, model, output_tensor="encoded:0",
                            input_max=[verify_graphs.VOCAB, verify_graphs.TYPES])
    assert report.passed and report.max_rel_diff < TOLERANCE, report.summary()
    assert set(report.inputs) == {"input_ids:0", "token_type_ids:0"}
    # Finding 2: `--input_tensor=a:0,b:0` was taken as one name.
    report = migrate.verify(prefix, model, input_tensor="input_ids:0,token_type_ids:0",
                            output_tensor="encoded:0",
                            input_max=[verify_graphs.VOCAB, verify_graphs.TYPES])
    assert report.passed, report.summary()


def test_each_integer_input_is_bounded_by_its_input_max_or_its_table(bert_style):
    import migrate

    prefix, model = bert_style
    # Type ids drawn from [0, VOCAB) would index past the two type embeddings.
    with pytest.raises(migrate.ArgumentError, match="Expected input_max to have one entry"):
        migrate.verify(prefix, model, input_tensors=["input_ids:0", "token_type_ids:0"],
                       output_tensor="encoded:0", input_max=[11, 2, 3])
    with pytest.raises(migrate.ArgumentError, match=r"token_type_ids:0 indexes bert/embeddings/"
                       r"token_type_embeddings, a table of 2 rows.*Received: input_max=5"):
        migrate.verify(prefix, model, output_tensor="encoded:0", input_max=[11, 5])
    # Without a bound, the table each integer input indexes gives it (its rows).
    report = migrate.verify(prefix, model, output_tensor="encoded:0", input_max=[11, None])
    assert report.passed, report.summary()
    assert report.inputs["token_type_ids:0"]["values"] == (
        "ids in [0, 2) (the 2 rows of bert/embeddings/token_type_embeddings)")
    assert report.inputs["input_ids:0"]["values"] == "ids in [0, 11) (input_max)"


def test_real_arrays_from_an_npz_feed_inputs_by_tensor_name(bert_style, tmp_path):
    import migrate

    prefix, model = bert_style
    ids = np.array([[1, 2, 3, 4], [10, 0, 0, 5]], np.int32)
    types = np.array([[0, 0, 1, 1], [1, 1, 0, 0]], np.int32)
    np.savez(tmp_path / "inputs.npz", **{"input_ids": ids, "token_type_ids:0": types})
    report = migrate.verify(prefix, model, output_tensor="encoded:0",
                            inputs=str(tmp_path / "inputs.npz"))
    assert report.passed, report.summary()
    assert report.inputs["input_ids:0"]["shape"] == [2, 4]


def test_char_rnn_with_initial_state_and_keep_prob_verifies_with_feeds(char_rnn):
    import migrate

    prefix, model = char_rnn
    report = migrate.verify(prefix, model, output_tensor="outputs:0",
                            feeds={"istate:0": 0, "keep_prob:0": 1.0})
    assert report.passed and report.max_rel_diff < TOLERANCE, report.summary()
    assert report.inputs["istate:0"] == {"shape": [2, 2 * verify_graphs.CHAR_UNITS],
                                         "dtype": "float32", "keras_input": False}
    assert not report.inputs["data:0"] == {} and report.inputs["data:0"]["keras_input"]


def test_an_unfed_placeholder_is_named_with_its_dtype_and_shape(char_rnn):
    import migrate

    prefix, model = char_rnn
    # Finding 2: this was an InvalidArgumentError through the generic path.
    with pytest.raises(migrate.ArgumentError) as raised:
        migrate.verify(prefix, model, input_tensors=["data:0"], output_tensor="outputs:0",
                       feeds={"keep_prob:0": 1.0})
    message = str(raised.value)
    assert "istate:0 float32 [?, 10]" in message and "feeds={'istate:0': value}" in message
    assert raised.value.option == "feeds" and "Received:" in message
    # Without input_tensors, `data` is the Keras input's placeholder by name; the others need feeds.
    with pytest.raises(migrate.ArgumentError, match=r"placeholders istate:0 float32 \[\?, 10\]; "
                       r"keep_prob:0 float32 <unknown rank>, which are not fed; feed each with "
                       r"feeds=\{'istate:0': value, 'keep_prob:0': value\}") as raised:
        migrate.verify(prefix, model, output_tensor="outputs:0")
    assert raised.value.option == "feeds"


def test_a_placeholder_of_unknown_rank_is_never_given_a_guessed_shape(tmp_path):
    import keras

    import migrate

    def build():
        tf = verify_graphs.tf_v1()
        inputs = tf.placeholder(tf.float32, name="inputs")  # TF 1.1 style: no shape at all
        weights = tf.get_variable("dense/kernel", [3, 2])
        tf.identity(tf.matmul(inputs, weights), name="logits")

    prefix = verify_graphs.save_graph(tmp_path, build)
    table = verify_graphs.write_table(tmp_path / "table.toml",
                                      "[[rule]]\nmatch = 'dense/kernel'\ntarget = 'dense/kernel'\n")

    def factory():
        inputs = keras.Input((3,), name="inputs")
        return keras.Model(inputs, keras.layers.Dense(2, use_bias=False, name="dense")(inputs))

    model = verify_graphs.convert_and_restore(prefix, table, factory, tmp_path / "converted")
    # Finding 3: this silently fed a batch of shape [2].
    with pytest.raises(migrate.ArgumentError, match="unknown rank.*Received: input_shape=None"):
        migrate.verify(prefix, model, input_tensor="inputs:0", output_tensor="logits:0")
    report = migrate.verify(prefix, model, input_tensor="inputs:0", output_tensor="logits:0",
                            input_shape=(3,))
    assert report.passed and report.inputs["inputs:0"]["shape"] == [2, 3]


def test_verify_errors_are_migrate_errors_with_the_keras_shape(bert_style):
    import migrate

    prefix, model = bert_style
    with pytest.raises(migrate.ArgumentError, match="no tensor nope:0.*Received: output_tensor"):
        migrate.verify(prefix, model, output_tensor="nope:0", input_max=11)
    with pytest.raises(migrate.ArgumentError, match="Received: output_tensor=None"):
        migrate.verify(prefix, model, input_max=11)
    with pytest.raises(migrate.ArgumentError, match=r"Received: feeds\['x'\]='zero'"):
        migrate.verify(prefix, model, output_tensor="encoded", feeds={"x": "zero"})


def test_command_line_spellings_parse_into_settings():
    import migrate
    from migrate import verify_settings as settings

    parsed = migrate.VerifySettings(
        output_tensor="encoded:0", input_tensors=("input_ids:0", "token_type_ids:0"),
        input_shapes=settings.parse_input_shapes("4;4"),
        input_max=settings.parse_input_max("11;2"),
        feeds=dict(map(settings.parse_feed, ["keep_prob:0=1.0", "is_training=false"])))
    assert parsed.shape_for(1) == (4,) and parsed.max_for(1) == 2
    assert dict(parsed.feeds) == {"keep_prob:0": 1.0, "is_training:0": False}
    for bad in (lambda: settings.parse_feed("keep_prob"),
                lambda: settings.parse_input_shapes("4,x"),
                lambda: settings.parse_input_max("50;two")):
        with pytest.raises(migrate.ArgumentError, match="Received:"):
            bad()


def test_found_placeholders_must_match_the_keras_inputs_in_dtype(bert_style):
    import keras

    import migrate

    prefix, _ = bert_style
    first, second = keras.Input((4,), name="a"), keras.Input((4,), name="b")
    float_model = keras.Model([first, second], keras.layers.Add()([first, second]))
    with pytest.raises(migrate.ArgumentError, match=r"in dtype \(Keras: float32, float32\)"):
        migrate.verify(prefix, float_model, output_tensor="encoded:0", input_max=11)


def test_a_training_graph_is_fed_the_batch_its_input_queue_dequeues(tmp_path):
    """No placeholder: the model reads `dequeue_many`'s features, which a session can feed;
    the labels it also dequeues and the training set baked into the graph are no input."""
    import migrate

    prefix = verify_graphs.save_graph(tmp_path, verify_graphs.build_queued_classifier)
    table = verify_graphs.write_table(tmp_path / "table.toml", verify_graphs.QUEUED_TABLE)
    model = verify_graphs.convert_and_restore(prefix, table,
                                              verify_graphs.queued_classifier_model,
                                              tmp_path / "converted")
    report = migrate.verify(prefix, model, output_tensor="logits:0")
    assert report.passed and report.max_rel_diff < TOLERANCE, report.summary()
    (fed,) = report.inputs
    assert fed == "fifo_queue_DequeueMany:0"
    assert report.batch_size == verify_graphs.QUEUED_BATCH
