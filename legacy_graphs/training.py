"""Trains a TF1 graph for a few steps and saves it the way TF1 users did."""

import contextlib
import os

import numpy as np

from legacy_graphs import compat


def train_and_save(*, output_dir, build, optimizer, steps, seed,
                   moving_average_decay=None, saver_kwargs=None):
    """Builds a graph, trains it, and writes `model.ckpt-<step>` with a `.meta`.

    Args:
        output_dir: directory that receives the checkpoint files.
        build: called inside the new graph; returns `(loss, make_feed)` where
            `make_feed(rng)` returns one training feed dict.
        optimizer: called inside the graph; returns a `tf.compat.v1.train`
            optimizer (its slots land in the checkpoint).
        steps: number of training steps.
        seed: graph-level and feed random seed.
        moving_average_decay: when set, an `ExponentialMovingAverage` of the
            trainable variables is kept, so the checkpoint holds EMA shadows.
        saver_kwargs: extra keyword arguments for `tf.compat.v1.train.Saver`.

    Returns:
        The checkpoint prefix, e.g. `output_dir/model.ckpt-3`.
    """
    tf = compat.import_tf_v1()
    graph = tf.Graph()
    with graph.as_default():
        tf.set_random_seed(seed)
        loss, make_feed = build()
        global_step = tf.train.get_or_create_global_step()
        update_ops = tf.get_collection(tf.GraphKeys.UPDATE_OPS)
        with tf.control_dependencies(update_ops):
            train_op = optimizer().minimize(loss, global_step=global_step)
        if moving_average_decay is not None:
            average = tf.train.ExponentialMovingAverage(moving_average_decay)
            with tf.control_dependencies([train_op]):
                train_op = average.apply(tf.trainable_variables())
        saver = tf.train.Saver(**(saver_kwargs or {}))
        rng = np.random.default_rng(seed)
        with tf.Session(graph=graph) as session:
            session.run(tf.global_variables_initializer())
            for _ in range(steps):
                session.run(train_op, make_feed(rng))
            os.makedirs(output_dir, exist_ok=True)
            return saver.save(session, os.path.join(output_dir, "model.ckpt"),
                              global_step=global_step)


def softmax_classifier(define_graph, *, label_rank, make_batch):
    """Returns a `build` for `train_and_save` that trains with sparse softmax cross-entropy.

    The loss is the mean cross-entropy plus the graph's regularization losses;
    `is_training:0` is fed True.

    Args:
        define_graph: builds the model in the default graph; returns
            `(inputs, logits)` and creates an `is_training` placeholder.
        label_rank: rank of the integer labels (1 for one label per example,
            2 for one per time step).
        make_batch: `rng -> (inputs, labels)`, one training batch.
    """
    tf = compat.import_tf_v1()

    def build():
        inputs, logits = define_graph()
        is_training = tf.get_default_graph().get_tensor_by_name("is_training:0")
        labels = tf.placeholder(tf.int32, [None] * label_rank, name="labels")
        loss = (tf.losses.sparse_softmax_cross_entropy(labels, logits)
                + tf.losses.get_regularization_loss())

        def make_feed(rng):
            batch_inputs, batch_labels = make_batch(rng)
            return {inputs: batch_inputs, labels: batch_labels, is_training: True}

        return loss, make_feed

    return build


def image_classifier(define_graph, *, input_shape, num_classes, batch_size):
    """Returns a `softmax_classifier` build on uniform [0, 1) images and random labels.

    Args:
        define_graph: as for `softmax_classifier`.
        input_shape: image shape without the batch dimension.
        num_classes: number of labels.
        batch_size: images per step.
    """
    return softmax_classifier(define_graph, label_rank=1, make_batch=lambda rng: (
        rng.uniform(0.0, 1.0, (batch_size, *input_shape)).astype("float32"),
        rng.integers(0, num_classes, batch_size).astype("int32")))


def train_image_classifier(output_dir, define_graph, *, input_shape, num_classes, batch_size,
                           learning_rate, momentum, steps, seed, tf1_control_flow=True):
    """Trains an image classifier with momentum on random images and saves it (`train_and_save`).

    Args:
        output_dir: directory that receives `model.ckpt-<steps>.*`.
        define_graph: as for `softmax_classifier`.
        input_shape, num_classes, batch_size: as for `image_classifier`.
        learning_rate, momentum: the `MomentumOptimizer`'s.
        steps: number of training steps.
        seed: graph and data random seed.
        tf1_control_flow: build the graph as TF 1.x did (`compat.tf1_control_flow`):
            a batch norm's `is_training` cond as Switch/Merge, reference
            variables; TensorFlow also builds and differentiates such a graph
            faster.

    Returns:
        The checkpoint prefix.
    """
    tf = compat.import_tf_v1()
    with compat.tf1_control_flow() if tf1_control_flow else contextlib.nullcontext():
        return train_and_save(
            output_dir=output_dir,
            build=image_classifier(define_graph, input_shape=input_shape,
                                   num_classes=num_classes, batch_size=batch_size),
            optimizer=lambda: tf.train.MomentumOptimizer(learning_rate, momentum),
            steps=steps,
            seed=seed)
