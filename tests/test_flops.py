"""bench/flops.py, the FLOP counter the README's cost table divides by: it counts the arithmetic
a training step really does, the learned priors' included."""

import os
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "bench"))
from flops import step_flops  # noqa: E402

SMALL = {"hidden": "64", "activation": "relu", "latent_dim": 8}


def test_a_dense_vae_step_counts_its_matrix_products_by_hand():
    """Forward 784-64-(8+8) | 8-64-784 on 100 images, and the backward pass's two products per
    layer (the first layer's input gradient is not needed): 3x the forward's products but one."""
    b = 100
    forward = 2 * b * (784 * 64 + 64 * 16 + 8 * 64 + 64 * 784)
    first_input_grad = 2 * b * 784 * 64
    assert step_flops({"model": "vae", **SMALL}, batch=b) == pytest.approx(3 * forward - first_input_grad, rel=0.01)


def test_a_per_class_vamp_prior_counts_its_pseudo_inputs_through_the_encoder():
    """The pseudo-inputs pass through the encoder inside the step (the labels bound there, as the
    trainer binds them): the conditional VampPrior does the unconditional one's work plus the
    one-hot's rows, far more than the conditional VAE."""
    cvae = step_flops({"model": "vae", "condition": "label", **SMALL})
    vamp = step_flops({"model": "vae", "prior": "vamp", "prior_components": 100, **SMALL})
    cvamp = step_flops({"model": "vae", "condition": "label", "prior": "vamp", "prior_components": 100, **SMALL})
    assert cvamp > 1.5 * cvae
    assert cvamp == pytest.approx(vamp, rel=0.05)
