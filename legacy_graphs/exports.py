"""What TF1 users shipped instead of checkpoints: SavedModels, TF-Hub modules, frozen GraphDefs.

`python -m legacy_graphs.exports --small_convnet=PREFIX --gru_classifier=PREFIX --output_dir=DIR`
writes, from legacy checkpoints written by `python -m legacy_graphs`, each
artifact the way TF 1.x code wrote it, under DIR:

    saved_model/1712345678   SavedModelBuilder: tag sets serve and train, serving_default
    simple_save              tf.saved_model.simple_save (serve, serving_default)
    hub_module               a TF-Hub v1 module: empty tag set, signature `default`, tfhub_module.pb
    frozen_convnet.pb        convert_variables_to_constants of small_convnet's training .meta
    frozen_gru.pb            the same of gru_classifier's (the weights enter a while loop)
    frozen_gru_v1_loop.pb    gru_classifier built with TF 1.x control flow (Enter frames,
                             reference variables read through NAME/read), restored and frozen
    frozen_slim.pb           a tf-slim net (conv1/weights, ...), frozen at its initial values
    frozen_slim.pbtxt        the same as text
    frozen_slim_dropout.pb   the same net with slim.dropout(keep_prob=0.5, is_training=True)
                             before fc, frozen from the training graph: dropout baked in
    simple_save_dropout      that training graph in a simple_save SavedModel
    optimized_convnet.pb     small_convnet's inference graph frozen, then optimize_for_inference
    tf2_saved_model          tf.saved_model.save of a tf.Module (a TF2 SavedModel)

and prints DIR.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app  # noqa: E402
from absl import flags  # noqa: E402

from legacy_graphs import compat  # noqa: E402
from legacy_graphs import gru_classifier  # noqa: E402
from legacy_graphs import small_convnet  # noqa: E402

_SMALL_CONVNET = flags.DEFINE_string("small_convnet", None, "small_convnet checkpoint prefix.")
_GRU = flags.DEFINE_string("gru_classifier", None, "gru_classifier checkpoint prefix.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Where the artifacts are written.")
flags.mark_flags_as_required(["small_convnet", "gru_classifier", "output_dir"])

EXPORT_VERSION = "1712345678"
SLIM_INPUT_SHAPE = (6, 6, 2)
SLIM_OUTPUT = "fc/BiasAdd"


def _restored_inference_session(tf, prefix, *, with_global_step=True):
    """Builds small_convnet's inference graph as an exporter did, restored from `prefix`."""
    graph = tf.Graph()
    with graph.as_default():
        images, logits = small_convnet.define_graph()
        if with_global_step:
            tf.train.get_or_create_global_step()
        session = tf.Session(graph=graph)
        tf.train.Saver().restore(session, prefix)
    return graph, session, images, logits


def write_saved_models(tf, prefix, output_dir):
    graph, session, images, logits = _restored_inference_session(tf, prefix)
    with graph.as_default(), session:
        signature = tf.saved_model.signature_def_utils.predict_signature_def(
            inputs={"images": images}, outputs={"logits": logits})
        builder = tf.saved_model.Builder(os.path.join(output_dir, "saved_model", EXPORT_VERSION))
        builder.add_meta_graph_and_variables(
            session, [tf.saved_model.tag_constants.SERVING],
            signature_def_map={"serving_default": signature})
        builder.add_meta_graph([tf.saved_model.tag_constants.TRAINING])
        builder.save()
    graph, session, images, logits = _restored_inference_session(tf, prefix)
    with graph.as_default(), session:
        tf.saved_model.simple_save(session, os.path.join(output_dir, "simple_save"),
                                   inputs={"images": images}, outputs={"logits": logits})
    graph, session, images, logits = _restored_inference_session(tf, prefix,
                                                                 with_global_step=False)
    with graph.as_default(), session:
        module_dir = os.path.join(output_dir, "hub_module")
        signature = tf.saved_model.signature_def_utils.predict_signature_def(
            inputs={"images": images}, outputs={"default": logits})
        builder = tf.saved_model.Builder(module_dir)
        builder.add_meta_graph_and_variables(session, [], signature_def_map={"default": signature})
        builder.add_meta_graph(["train"])
        builder.save()
    # tensorflow_hub's ModuleDef: field 1, format, FORMAT_V3 = 3.
    with open(os.path.join(module_dir, "tfhub_module.pb"), "wb") as file:
        file.write(b"\x08\x03")


def write_frozen(tf, meta_prefix, output_node, path):
    """Freezes a training checkpoint's graph as TF1 users did: import the .meta, restore, freeze."""
    graph = tf.Graph()
    with graph.as_default(), tf.Session(graph=graph) as session:
        saver = tf.train.import_meta_graph(meta_prefix + ".meta", clear_devices=True)
        saver.restore(session, meta_prefix)
        frozen = tf.graph_util.convert_variables_to_constants(
            session, graph.as_graph_def(), [output_node])
    tf.io.write_graph(frozen, os.path.dirname(path), os.path.basename(path), as_text=False)


def write_frozen_v1_loop(tf, prefix, path):
    """gru_classifier as TF 1.x built it: a while loop of Enter/Exit frames, reference variables."""
    graph = tf.Graph()
    with compat.tf1_control_flow(), graph.as_default():
        gru_classifier.define_graph()
        with tf.Session(graph=graph) as session:
            tf.train.Saver().restore(session, prefix)
            frozen = tf.graph_util.convert_variables_to_constants(
                session, graph.as_graph_def(), [gru_classifier.OUTPUT_TENSOR.split(":")[0]])
    tf.io.write_graph(frozen, os.path.dirname(path), os.path.basename(path), as_text=False)


def write_frozen_slim(tf, output_dir, *, dropout=False):
    import tf_slim as slim

    # TF 1.x variables were reference variables, read through `NAME/read`.
    tf.disable_resource_variables()
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(3)
        inputs = tf.placeholder(tf.float32, [None, *SLIM_INPUT_SHAPE], name="inputs")
        with slim.arg_scope([slim.conv2d], padding="SAME"):
            net = slim.conv2d(inputs, 3, [3, 3], scope="conv1")
            net = slim.conv2d(net, 4, [1, 1], scope="conv2")
        net = slim.flatten(net)
        if dropout:  # The training graph, shipped as it was.
            net = slim.dropout(net, 0.5, is_training=True, scope="dropout")
        logits = slim.fully_connected(net, 5, activation_fn=None, scope="fc")
        with tf.Session(graph=graph) as session:
            session.run(tf.global_variables_initializer())
            # Biases start at zero: give them values a conversion must carry.
            for variable in tf.trainable_variables():
                if variable.op.name.endswith("biases"):
                    session.run(variable.assign(tf.random.normal(variable.shape, seed=7)))
            frozen = tf.graph_util.convert_variables_to_constants(
                session, graph.as_graph_def(), [SLIM_OUTPUT])
            if dropout:
                tf.saved_model.simple_save(session, os.path.join(output_dir, "simple_save_dropout"),
                                           inputs={"inputs": inputs}, outputs={"logits": logits})
    tf.enable_resource_variables()
    if dropout:
        tf.io.write_graph(frozen, output_dir, "frozen_slim_dropout.pb", as_text=False)
        return
    tf.io.write_graph(frozen, output_dir, "frozen_slim.pb", as_text=False)
    tf.io.write_graph(frozen, output_dir, "frozen_slim.pbtxt", as_text=True)


def write_optimized(tf, prefix, output_dir):
    from tensorflow.python.tools import optimize_for_inference_lib

    graph = tf.Graph()
    with graph.as_default():
        images = tf.placeholder(tf.float32, [None, *small_convnet.INPUT_SHAPE], name="images")
        tf.placeholder_with_default(False, [], name="is_training")
        # The inference graph as exported for serving: BatchNorm with training=False.
        tf_layers = tf.layers
        net = tf_layers.conv2d(images, 4, 3, padding="same", use_bias=False, name="conv")
        net = tf_layers.batch_normalization(net, momentum=0.5, training=False, name="bn")
        net = tf.nn.relu(net)
        net = tf_layers.max_pooling2d(net, 2, 2, name="pool")
        net = tf_layers.flatten(net, name="flatten")
        tf_layers.dense(net, small_convnet.NUM_CLASSES, name="logits")
        with tf.Session(graph=graph) as session:
            tf.train.Saver().restore(session, prefix)
            frozen = tf.graph_util.convert_variables_to_constants(
                session, graph.as_graph_def(), ["logits/BiasAdd"])
    optimized = optimize_for_inference_lib.optimize_for_inference(
        frozen, ["images"], ["logits/BiasAdd"], tf.float32.as_datatype_enum)
    tf.io.write_graph(optimized, output_dir, "optimized_convnet.pb", as_text=False)


def write_tf2_saved_model(output_dir):
    import tensorflow as tf2

    module = tf2.Module()
    module.weights = tf2.Variable([[1.0, 2.0]])
    module.call = tf2.function(lambda inputs: tf2.matmul(inputs, module.weights),
                               input_signature=[tf2.TensorSpec([None, 1], tf2.float32)])
    tf2.saved_model.save(module, os.path.join(output_dir, "tf2_saved_model"))


def main(argv):
    del argv
    tf = compat.import_tf_v1()
    output_dir = _OUTPUT_DIR.value
    os.makedirs(output_dir, exist_ok=True)
    write_saved_models(tf, _SMALL_CONVNET.value, output_dir)
    write_frozen(tf, _SMALL_CONVNET.value, small_convnet.OUTPUT_TENSOR.split(":")[0],
                 os.path.join(output_dir, "frozen_convnet.pb"))
    write_frozen(tf, _GRU.value, gru_classifier.OUTPUT_TENSOR.split(":")[0],
                 os.path.join(output_dir, "frozen_gru.pb"))
    write_frozen_v1_loop(tf, _GRU.value, os.path.join(output_dir, "frozen_gru_v1_loop.pb"))
    write_frozen_slim(tf, output_dir)
    write_frozen_slim(tf, output_dir, dropout=True)
    write_optimized(tf, _SMALL_CONVNET.value, output_dir)
    write_tf2_saved_model(output_dir)
    print(output_dir)


if __name__ == "__main__":
    app.run(main)
