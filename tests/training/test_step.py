"""The training step: N replicas compute the gradients and updates of one device."""

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import ROOT


DISTRIBUTED = textwrap.dedent("""
    import json, os, sys
    os.environ["TFVAE_CPU_DEVICES"] = "2"
    sys.path.insert(0, {root!r})
    import numpy as np
    from tfvae.config import make_config
    from tfvae.data import ImageData, prepare
    from tfvae.rundir import RunDir
    from tfvae.strategy import make_strategy
    from tfvae.training import build
    sys.path.insert(0, {tests!r})
    from conftest import make_bars

    x, y = make_bars(300, seed=5)
    splits = prepare(ImageData(x / 255.0, y, x[:50] / 255.0, y[:50]), binarization="dynamic",
                     validation_split=0.1, seed=0)
    out = {{}}
    for name in ("default", "mirrored"):
        cfg = make_config(dict(model={model!r}, hidden="32", latent_dim=4, batch_size=64, seed=3,
                               strategy=name, mc_samples=2, **{extra!r}))
        t = build(cfg, splits, RunDir(os.path.join({tmp!r}, name)), strategy=make_strategy(name))
        if name == "default":
            start = [v.numpy() for v in t.model.trainable_variables]
        else:  # the same starting point, whatever the initialisers did
            for v, value in zip(t.model.trainable_variables, start):
                v.assign(value)
        labels = splits.train_labels[:64] if cfg.condition == "label" else None
        loss, grads = t.gradients(splits.train[:64], [7, 7], labels)
        order = t.order_for_epoch(0)
        import tensorflow as tf
        sums, done, finite, stopped = t.train_step.chunk(order, tf.constant(0), tf.constant(3))
        out[name] = dict(replicas=t.replicas, loss=loss, grads=[g.ravel().tolist() for g in grads],
                         chunk_loss=float(sums[0]),
                         weights=[w.numpy().ravel().tolist() for w in t.model.trainable_variables])
    print(json.dumps(out))
""")


@pytest.mark.parametrize("model,extra", [("vae", {}), ("dae", {}), ("hvae", {"prior": "vamp", "prior_components": 4}),
                                         ("vae", {"condition": "label", "label_classes": 8, "prior": "class"})])
def test_mirrored_over_two_cpu_devices_matches_one_device(tmp_path, model, extra):
    script = DISTRIBUTED.format(root=ROOT, tests=os.path.join(ROOT, "tests"), tmp=str(tmp_path), model=model,
                                extra=extra)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    one, two = out["default"], out["mirrored"]
    assert one["replicas"] == 1 and two["replicas"] == 2
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-6)
    for g1, g2 in zip(one["grads"], two["grads"]):
        np.testing.assert_allclose(g2, g1, rtol=1e-4, atol=2e-6)
    assert two["chunk_loss"] == pytest.approx(one["chunk_loss"], rel=1e-5)
    for w1, w2 in zip(one["weights"], two["weights"]):  # after 3 optimizer steps
        np.testing.assert_allclose(w2, w1, rtol=1e-4, atol=1e-5)


