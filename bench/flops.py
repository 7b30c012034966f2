"""The arithmetic of one training step of any model family, counted from its TensorFlow graph.

    python bench/flops.py --model hvae --prior vamp --hidden 300,300 --activation gated -z 40

The step (the family's loss on one batch, its gradients with respect to every trainable
variable) is traced with static shapes; the FLOPs of its matrix products and convolutions
(MatMul, BatchMatMulV2, Conv2D and both of Conv2D's gradients; a multiply-add counts 2) are summed.
Elementwise work (activations, the mixture prior's log-sum-exp, the likelihood) is left out: it is
a few percent of these models' arithmetic. This is what the training-speed table divides by.
"""

import argparse
import math
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _static(shape):
    dims = shape.as_list() if shape.rank is not None else None
    if dims is None or any(d is None for d in dims):
        raise ValueError(f"a dynamic shape {shape} in the step: trace it with static shapes")
    return dims


def _op_flops(op) -> int:
    kind = op.type
    if kind == "MatMul":
        a = _static(op.inputs[0].shape)
        k = a[0] if op.get_attr("transpose_a") else a[1]
        m, n = _static(op.outputs[0].shape)
        return 2 * m * n * k
    if kind in ("BatchMatMulV2", "BatchMatMulV3", "BatchMatMul"):
        a = _static(op.inputs[0].shape)
        adj = op.get_attr("adj_x")
        k = a[-2] if adj else a[-1]
        out = _static(op.outputs[0].shape)
        return 2 * math.prod(out) * k
    if kind == "Conv2D":
        kh, kw, cin, _ = _static(op.inputs[1].shape)
        return 2 * math.prod(_static(op.outputs[0].shape)) * kh * kw * cin
    if kind == "Conv2DBackpropInput":
        kh, kw, _, cout = _static(op.inputs[1].shape)
        return 2 * math.prod(_static(op.inputs[2].shape)) * kh * kw * _static(op.outputs[0].shape)[-1]
    if kind == "Conv2DBackpropFilter":
        kh, kw, cin, _ = _static(op.outputs[0].shape)
        return 2 * math.prod(_static(op.inputs[2].shape)) * kh * kw * cin
    return 0


def graph_flops(graph) -> int:
    total = 0
    for op in graph.get_operations():
        total += _op_flops(op)
        for name in ("then_branch", "else_branch", "body", "f"):  # nested functions, if any
            try:
                fn = op.get_attr(name)
            except (ValueError, TypeError):
                continue
            inner = graph._functions.get(getattr(fn, "name", None) or "")  # noqa: SLF001
            if inner is not None:
                total += graph_flops(inner.graph)
    return total


def step_flops(options: dict, image_shape=(28, 28, 1), batch: int = 100) -> int:
    """FLOPs of one training step (loss and gradients) of the model `options` describe."""
    import keras
    import tensorflow as tf

    from tfvae import models
    from tfvae.config import make_config

    if options.get("condition") == "label":  # Fashion-MNIST's 10 classes
        options = {"label_classes": 10, **options}
    config = make_config(options)
    keras.utils.set_random_seed(0)
    model = models.build(config, image_shape)
    # A conditional model is bound to the batch's labels inside the step, as the trainer binds it:
    # a per-class VampPrior's pseudo-inputs then pass through the encoder in the traced graph.
    labels = tf.range(batch) % config.label_classes if config.condition == "label" else None
    x = tf.random.uniform([batch, *image_shape])
    noise = {k: tf.constant(v) for k, v in model.draw_noise(batch, tf.constant([0, 1])).items()}
    schedule = {k: tf.constant(v, tf.float32) for k, v in model.eval_schedule().items()}

    @tf.function
    def step(x, noise, schedule):
        with tf.GradientTape() as tape:
            loss, _ = model.given(labels).loss(x, noise, schedule)
            total = tf.reduce_mean(loss)
        return tape.gradient(total, model.trainable_variables)

    return graph_flops(step.get_concrete_function(x, noise, schedule).graph)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="vae")
    p.add_argument("--prior", default=None)
    p.add_argument("--prior-components", type=int, default=None)
    p.add_argument("--network", default="mlp")
    p.add_argument("--hidden", default="300,300")
    p.add_argument("--activation", default="gated")
    p.add_argument("-z", "--latent-dim", type=int, default=40)
    p.add_argument("-b", "--batch", type=int, default=100)
    a = p.parse_args()
    options = {"model": a.model, "network": a.network, "hidden": a.hidden, "activation": a.activation,
               "latent_dim": a.latent_dim}
    if a.prior:
        options["prior"] = a.prior
    if a.prior_components:
        options["prior_components"] = a.prior_components
    flops = step_flops(options, batch=a.batch)
    print(f"{flops / 1e9:.3f} GFLOP per training step of {a.batch} images ({flops / a.batch / 1e6:.2f} MFLOP per image)")


if __name__ == "__main__":
    main()
