"""The registered layers: the gated dense layer and the Parameters layer that carries free variables."""

import keras
import numpy as np


def test_gated_dense_is_linear_times_sigmoid_gate():
    from tfvae.layers import GatedDense

    layer = GatedDense(4)
    x = np.random.default_rng(1).normal(size=(3, 5)).astype(np.float32)
    y = layer(x).numpy()
    lin = x @ layer.linear.kernel.numpy() + layer.linear.bias.numpy()
    gate = 1 / (1 + np.exp(-(x @ layer.gate.kernel.numpy() + layer.gate.bias.numpy())))
    np.testing.assert_allclose(y, lin * gate, rtol=1e-5, atol=1e-6)


def test_parameters_hold_named_variables_that_a_saved_model_keeps(tmp_path):
    from tfvae.layers import Parameters

    keras.utils.set_random_seed(0)
    params = Parameters({"loc": (3, 2), "logits": (3,)}, {"loc": "random_normal"}, name="prior")
    assert params["loc"].shape == (3, 2) and np.all(params["logits"].numpy() == 0)
    assert np.any(params["loc"].numpy() != 0) and [w.name for w in params.weights] == ["loc", "logits"]
    x = keras.Input((2,))
    model = keras.Model(x, params(x))
    np.testing.assert_array_equal(model(np.ones((1, 2), np.float32)).numpy(), np.ones((1, 2)))  # passes x through
    model.save(tmp_path / "m.keras")
    loaded = keras.models.load_model(tmp_path / "m.keras", compile=False).get_layer("prior")
    np.testing.assert_array_equal(loaded["loc"].numpy(), params["loc"].numpy())
    try:
        params["scale"]
    except KeyError as e:
        assert "has no parameter 'scale'" in str(e)
    else:
        raise AssertionError("an unknown parameter must be a KeyError")
