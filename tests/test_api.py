"""The Python API: fit, load and the TrainedModel's numpy-in, numpy-out operations."""

import os

import numpy as np

import tfvae

from conftest import SMALL


def test_python_api_mirrors_the_cli(bars_npz, tmp_path):
    result = tfvae.fit(bars_npz, out=str(tmp_path / "api"), progress=False, **SMALL)
    model = result.load()
    x = np.random.default_rng(0).random((3, 28, 28, 1)).astype(np.float32)
    z = model.encode(x)
    assert z.shape == (3, 4)
    assert model.decode(z).shape == (3, 28, 28, 1)
    r = model.reconstruct(x)
    assert r.shape == (3, 28, 28, 1) and 0 <= r.min() and r.max() <= 1
    s = model.sample(5, seed=1)
    np.testing.assert_array_equal(s, model.sample(5, seed=1))
    assert not np.array_equal(s, model.sample(5, seed=2))
    binary = model.sample(4, seed=1, mean=False)
    assert set(np.unique(binary)) <= {0.0, 1.0}
    q = model.posterior(x)
    np.testing.assert_allclose(q.mean().numpy(), z, rtol=1e-6)
    # The loaded model holds the weights the trainer ended with, read independently of model.keras
    # from the last checkpoint (the optimizer's references to the trained variables): a model.keras
    # saved with other weights (halved, stale, another epoch's) fails here.
    import tensorflow as tf

    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(os.path.join(result.run_dir, "checkpoints")))
    trained = [reader.get_tensor(k) for k in reader.get_variable_to_shape_map()
               if k.startswith("optimizer/_trainable_variables/")]
    loaded = [w.numpy() for w in model.keras_model.trainable_weights]
    assert len(trained) == len(loaded) > 0
    unmatched = list(range(len(trained)))
    for w in loaded:  # each loaded weight is one of the trained variables, value for value
        match = next((i for i in unmatched if trained[i].shape == w.shape and np.array_equal(trained[i], w)), None)
        assert match is not None, f"a loaded weight {w.shape} is none of the checkpoint's trained variables"
        unmatched.remove(match)


def test_evaluation_pictures_and_scores_share_one_loading_of_the_data(bars_npz, tmp_path, monkeypatch):
    import tfvae.data as data
    from tfvae import pictures
    from tfvae.evaluation import evaluate

    result = tfvae.fit(bars_npz, out=str(tmp_path / "once"), progress=False, **SMALL)
    trained = tfvae.load(result.run_dir)
    calls = []
    real = data.load_source
    monkeypatch.setattr(data, "load_source", lambda *a, **k: calls.append(a) or real(*a, **k))
    evaluate(trained, k=10, max_test_examples=8)
    pictures.reconstruct(trained, trained.splits().test[:4], str(tmp_path / "r.png"))
    trained.score(trained.splits().test[:8])
    assert len(calls) == 1
    trained.splits(class_filter=False)  # another protocol: loaded once more, then kept too
    trained.splits(class_filter=False)
    assert len(calls) == 2
