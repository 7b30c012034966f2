"""Label fidelity of a conditional model: does a sample drawn for label y look like class y?

A small convolutional classifier (`CLASSIFIER`: two 3x3 convolutions of 32 and 64 filters, each
followed by 2x2 max pooling, a dense layer of 128 ReLU units, the class logits) is trained on the
run's real training images (as the source holds them, in [0, 1]; Adam 1e-3, batch 128,
`CLASSIFIER_EPOCHS` epochs, seeded) the first time a conditional run is evaluated, and kept with
the run (`RUN/classifier.keras`, its test accuracy in `RUN/classifier.json`); later evaluations
use the same classifier, so their numbers compare. The label fidelity is the fraction of n
generated samples (pixel means of p(x|z, y), z ~ p(z|y), as many per class as n allows) that the
classifier assigns to the class asked for; its accuracy on the real test images is reported
beside it, the ceiling against which to read the fidelity.
"""

from __future__ import annotations

import json
import os

import numpy as np

from tfvae.data import as_float
from tfvae.rundir import atomic_write_text

CLASSIFIER_EPOCHS = 10
CLASSIFIER_FILE, CLASSIFIER_INFO = "classifier.keras", "classifier.json"
FIDELITY_SEED = 4242


def build_classifier(image_shape, classes: int, seed: int = 0):
    """The fidelity classifier (Keras functional model): images -> class logits."""
    import keras

    keras.utils.set_random_seed(seed)
    x = keras.Input(tuple(image_shape), name="images")
    h = x
    for i, filters in enumerate((32, 64)):
        h = keras.layers.Conv2D(filters, 3, padding="same", activation="relu", name=f"conv_{i}")(h)
        h = keras.layers.MaxPooling2D(2, name=f"pool_{i}")(h)
    h = keras.layers.Flatten(name="flatten")(h)
    h = keras.layers.Dense(128, activation="relu", name="dense")(h)
    return keras.Model(x, keras.layers.Dense(classes, name="logits")(h), name="fidelity_classifier")


def accuracy(classifier, x, y, batch_size: int = 1000) -> float:
    """The fraction of images x that the classifier assigns to their labels y."""
    return float(np.mean(predict(classifier, x, batch_size) == np.asarray(y)))


def predict(classifier, x, batch_size: int = 1000) -> np.ndarray:
    """The classifier's class for each image."""
    x = as_float(np.asarray(x))
    return np.concatenate([np.argmax(classifier(x[a:a + batch_size], training=False).numpy(), axis=-1)
                           for a in range(0, len(x), batch_size)]).astype(np.int64)


def train_classifier(images, labels, classes: int, seed: int = 0, epochs: int = CLASSIFIER_EPOCHS, progress=None):
    """A classifier trained on `images` (any dtype `as_float` reads) with integer `labels`."""
    import keras
    import tensorflow as tf

    model = build_classifier(images.shape[1:], classes, seed)
    optimizer = keras.optimizers.Adam(1e-3)
    x = tf.constant(as_float(np.asarray(images)))
    y = tf.constant(np.asarray(labels, np.int32))
    n, batch = len(images), 128

    @tf.function
    def step(idx):
        with tf.GradientTape() as tape:
            logits = model(tf.gather(x, idx), training=True)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(tf.gather(y, idx), logits))
        grads = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(grads, model.trainable_variables))
        return loss

    steps = max(1, n // batch)
    if progress is not None:
        progress.start("fidelity classifier", epochs * steps)
    rng = np.random.default_rng([seed, 31])
    for epoch in range(epochs):
        order = rng.permutation(n).astype(np.int32)
        for s in range(steps):
            step(tf.constant(order[s * batch:(s + 1) * batch]))
            if progress is not None:
                progress.update(epoch * steps + s + 1)
    if progress is not None:
        progress.finish(epochs * steps)
    return model


def run_classifier(trained, splits, progress=None):
    """(classifier, info) of a conditional run: RUN/classifier.keras when it is there and intact,
    else trained now on the run's training images and written beside the run (atomically)."""
    import keras

    path = os.path.join(trained.run_dir, CLASSIFIER_FILE)
    info_path = os.path.join(trained.run_dir, CLASSIFIER_INFO)
    if os.path.isfile(path) and os.path.isfile(info_path):
        try:
            with open(info_path, encoding="utf-8") as f:
                info = json.load(f)
            return keras.models.load_model(path, compile=False), info
        except Exception:  # a damaged copy is never trusted: trained again below, and said
            if progress is not None:
                progress.message(f"note: {path} or {CLASSIFIER_INFO} is damaged; training the fidelity classifier "
                                 "again")
    config = trained.config
    classes = config.label_classes
    classifier = train_classifier(splits.train, splits.train_labels, classes, seed=config.seed, progress=progress)
    keep = np.isin(splits.test_labels, trained.model.label_rows(1))
    info = {"architecture": "conv 32 - pool - conv 64 - pool - dense 128 - logits",
            "epochs": CLASSIFIER_EPOCHS, "training_images": int(len(splits.train)),
            "test_accuracy": accuracy(classifier, splits.test_originals[keep], splits.test_labels[keep]),
            "test_images": int(keep.sum())}
    tmp = f"{path}.tmp-{os.getpid()}.keras"
    try:
        classifier.save(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    atomic_write_text(info_path, json.dumps(info, indent=2) + "\n")
    return classifier, info


def label_fidelity(model, classifier, n: int = 10_000, seed: int = FIDELITY_SEED, batch_size: int = 1000) -> dict:
    """{"fidelity": the fraction of n samples classified as the label they were drawn for,
    "per_class": {label: fraction}, "samples": n}: n samples (pixel means), the same number for
    each class the model was trained on (n rounded down to a multiple of the classes)."""
    import tensorflow as tf

    classes = model.label_rows(1)
    labels = model.label_rows(max(1, n // len(classes)))
    hits = np.empty(len(labels), bool)
    for i, a in enumerate(range(0, len(labels), batch_size)):
        y = labels[a:a + batch_size]
        images = model.given(y).sample(len(y), tf.constant([seed, i], tf.int64)).numpy()
        hits[a:a + len(y)] = predict(classifier, images) == y
    return {"fidelity": float(hits.mean()), "samples": int(len(labels)),
            "per_class": {int(c): float(hits[labels == c].mean()) for c in classes}}
