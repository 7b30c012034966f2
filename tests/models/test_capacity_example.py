"""The worked example of docs/ARCHITECTURE.md, a family in one file (docs/examples/capacity_vae.py):
its loss is the formula it states, its capacity grows as it says, and it trains with a learned prior."""

import numpy as np
import pytest
import tensorflow as tf

import tfvae

from conftest import family_images, family_model

pytestmark = pytest.mark.usefixtures("docs_example")


def test_the_loss_holds_the_kl_near_the_capacity():
    m = family_model(model="vae-capacity", capacity=4.0, gamma=10.0, mc_samples=2)
    x = tf.constant(family_images(binary=True))
    noise = m.draw_noise(len(x), [1, 2])
    loss, metrics = m.loss(x, noise, {"capacity": tf.constant(1.5)})
    terms = m.elbo(x, noise["eps"])
    by_hand = -terms["log_px_z"].numpy() + 10.0 * np.abs(terms["kl"].numpy() - 1.5)
    np.testing.assert_allclose(loss.numpy(), by_hand, rtol=1e-6)
    np.testing.assert_allclose(metrics["elbo"].numpy(), (terms["log_px_z"] - terms["kl"]).numpy(), rtol=1e-6)


def test_the_capacity_grows_linearly_then_stays():
    m = family_model(model="vae-capacity", capacity=10.0, capacity_epochs=4)
    values = [float(m.schedule(tf.constant(s), 5)["capacity"]) for s in (0, 9, 19, 50)]
    np.testing.assert_allclose(values, [0.5, 5.0, 10.0, 10.0], rtol=1e-6)
    assert m.eval_schedule() == {"capacity": 10.0} and type(m).warmup_epochs(m.config) == 4


def test_it_trains_with_the_vampprior_and_records_the_capacity(bars_npz, tmp_path):
    from tfvae.rundir import RunDir

    run = tfvae.fit(bars_npz, out=str(tmp_path / "c"), model="vae-capacity", capacity=5.0, capacity_epochs=2,
                    prior="vamp", prior_components=4, hidden="16", latent_dim=2, batch_size=64, epochs=3,
                    progress=False)
    rows = RunDir(run.run_dir).read_metrics()
    assert [round(r["capacity"], 4) for r in rows] == [2.5, 5.0, 5.0] and "kl_mc" in rows[-1]
    assert tfvae.load(run.run_dir).model.prior.description == "a VampPrior of 4 pseudo-inputs"
