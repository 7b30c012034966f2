"""Data sources: IDX, npz, image folders, TFDS (mocked and offline), splits and binarization."""

import gzip
import socket

import numpy as np
import pytest

from tfvae.data import as_float, load_source, parse_source, prepare
from tfvae.data.idx import read_idx
from tfvae.errors import DataError

from conftest import closed_port, make_idx_dir


@pytest.mark.parametrize("compress", [True, False])
def test_idx_dir_round_trip(tmp_path, compress):
    x_train, x_test = make_idx_dir(tmp_path, compress=compress)
    data = load_source(f"idx:{tmp_path}")
    assert data.x_train.shape == (20, 8, 8, 1) and data.x_test.shape == (10, 8, 8, 1)
    assert data.x_train.dtype == np.uint8  # 8-bit pixels stay 8-bit until a batch is drawn
    np.testing.assert_array_equal(data.x_train[..., 0], x_train)
    np.testing.assert_allclose(as_float(data.x_train)[..., 0], x_train / 255.0, atol=1e-7)
    assert data.y_train.shape == (20,) and data.y_train.dtype == np.int64


def test_idx_without_labels_has_none(tmp_path):
    make_idx_dir(tmp_path, labels=False)
    data = load_source(f"idx:{tmp_path}")
    assert data.y_train is None and data.y_test is None


def test_idx_errors_name_the_file_and_the_fix(tmp_path):
    with pytest.raises(DataError, match="no such directory"):
        load_source(f"idx:{tmp_path / 'nope'}")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no train images file"):
        load_source(f"idx:{tmp_path / 'empty'}")

    make_idx_dir(tmp_path)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])  # truncated gzip stream
    with pytest.raises(DataError, match="corrupt or truncated gzip"):
        load_source(f"idx:{tmp_path}")

    raw = gzip.decompress(good)
    path.write_bytes(gzip.compress(raw[:-10]))  # valid gzip, truncated IDX payload
    with pytest.raises(DataError, match="truncated: its header promises"):
        read_idx(str(path))
    path.write_bytes(gzip.compress(b"\x12\x34" + raw[2:]))
    with pytest.raises(DataError, match="not an IDX file"):
        read_idx(str(path))


def test_real_fashion_mnist_files(fashion_mnist):
    data = load_source(f"idx:{fashion_mnist}")
    assert data.x_train.shape == (60000, 28, 28, 1) and data.x_test.shape == (10000, 28, 28, 1)
    assert data.x_train.dtype == np.uint8 and 0 == data.x_train.min() and data.x_train.max() == 255
    assert sorted(np.unique(data.y_train)) == list(range(10))
    assert np.bincount(data.y_test).tolist() == [1000] * 10


def test_npz_source_and_its_errors(tmp_path):
    x = np.random.default_rng(0).integers(0, 256, (30, 8, 8, 3), dtype=np.uint8)
    np.savez(tmp_path / "ok.npz", x_train=x[:20], x_test=x[20:], y_train=np.arange(20), y_test=np.arange(10))
    data = load_source(f"npz:{tmp_path / 'ok.npz'}")
    assert data.x_train.shape == (20, 8, 8, 3) and data.y_test.tolist() == list(range(10))

    np.savez(tmp_path / "nokey.npz", x_train=x)
    with pytest.raises(DataError, match="no x_test array"):
        load_source(f"npz:{tmp_path / 'nokey.npz'}")
    (tmp_path / "bad.npz").write_bytes((tmp_path / "ok.npz").read_bytes()[:100])
    with pytest.raises(DataError, match="corrupt or truncated"):
        load_source(f"npz:{tmp_path / 'bad.npz'}")
    f = x[:20].astype(np.float32) / 255
    f[3, 2, 2, 0] = np.nan
    np.savez(tmp_path / "nan.npz", x_train=f, x_test=x[20:] / 255.0)
    with pytest.raises(DataError, match="NaN or infinite"):
        load_source(f"npz:{tmp_path / 'nan.npz'}")
    np.savez(tmp_path / "range.npz", x_train=x[:20].astype(np.float32), x_test=x[20:].astype(np.float32))
    with pytest.raises(DataError, match=r"must lie in \[0, 1\].*divide by 255"):
        load_source(f"npz:{tmp_path / 'range.npz'}")
    np.savez(tmp_path / "sizes.npz", x_train=x[:20], x_test=x[20:, :4])
    with pytest.raises(DataError, match="one image size"):
        load_source(f"npz:{tmp_path / 'sizes.npz'}")
    with pytest.raises(DataError, match="no such file"):
        load_source(f"npz:{tmp_path / 'missing.npz'}")


def _png(path, array):
    from tfvae.images import write_png

    write_png(str(path), array)


def test_folder_source_with_class_subfolders(tmp_path):
    rng = np.random.default_rng(0)
    for cls in ("cats", "dogs"):
        (tmp_path / cls).mkdir()
        for i in range(6):
            _png(tmp_path / cls / f"{i}.png", rng.integers(0, 256, (12, 12, 1), dtype=np.uint8))
    data = load_source(f"folder:{tmp_path}", seed=0)
    assert data.x_train.shape[1:] == (12, 12, 1)
    assert len(data.x_train) + len(data.x_test) == 12
    assert data.class_names == ["cats", "dogs"]
    assert set(np.concatenate([data.y_train, data.y_test]).tolist()) == {0, 1}


def test_folder_source_refuses_mismatched_sizes(tmp_path):
    _png(tmp_path / "a.png", np.zeros((12, 12, 1), np.uint8))
    _png(tmp_path / "b.png", np.zeros((10, 12, 1), np.uint8))
    _png(tmp_path / "c.png", np.zeros((12, 12, 1), np.uint8))
    with pytest.raises(DataError, match="mismatched sizes"):
        load_source(f"folder:{tmp_path}")


def test_unknown_source_kind():
    with pytest.raises(DataError, match="unknown dataset source"):
        parse_source("csv:/tmp/x")
    assert parse_source("mnist") == ("tfds", "mnist")
    assert parse_source("idx:/d") == ("idx", "/d")


def test_prepare_splits_are_seeded_and_binarized(tmp_path):
    x, _ = make_idx_dir(tmp_path, n_train=100)
    data = load_source(f"idx:{tmp_path}")
    a = prepare(data, binarization="dynamic", validation_split=0.2, seed=3)
    b = prepare(data, binarization="dynamic", validation_split=0.2, seed=3)
    c = prepare(data, binarization="dynamic", validation_split=0.2, seed=4)
    assert len(a.train) == 80 and len(a.validation) == 20
    np.testing.assert_array_equal(a.validation, b.validation)
    assert not np.array_equal(a.train, c.train)
    assert set(np.unique(a.validation)) <= {0.0, 1.0} and set(np.unique(a.test)) <= {0.0, 1.0}
    assert a.validation.dtype == np.float32 and a.test.dtype == np.float32
    assert len(np.unique(a.train)) > 2  # dynamic: training images stay grey, binarized per batch
    # the test set is binarized once with a fixed seed, whatever the run's seed and binarization mode
    np.testing.assert_array_equal(a.test, c.test)
    np.testing.assert_array_equal(a.test, prepare(data, binarization="static", validation_split=0.2, seed=9).test)
    s = prepare(data, binarization="static", validation_split=0.2, seed=3)
    assert set(np.unique(as_float(s.train))) <= {0.0, 1.0}
    m = prepare(data, binarization="none", validation_split=0.0, seed=3, max_train_examples=7)
    assert len(m.train) == 7 and len(m.validation) == 0


def test_uniform_dequantization_spreads_each_level_over_its_bin_once_for_evaluation(tmp_path):
    """Validation and test: (k + u) / 256, each pixel in its own level's bin, seeded whatever the run's
    seed; the training images stay 8-bit (the trainer draws u per batch); the originals are kept."""
    import tensorflow as tf

    from tfvae.data import dequantize
    from tfvae.objectives import dequantize as dequantize_batch

    make_idx_dir(tmp_path, n_train=100)
    data = load_source(f"idx:{tmp_path}")
    a = prepare(data, binarization="none", dequantization="uniform", validation_split=0.2, seed=3)
    c = prepare(data, binarization="none", dequantization="uniform", validation_split=0.2, seed=4)
    raw = prepare(data, binarization="none", validation_split=0.2, seed=3)
    assert a.train.dtype == np.uint8 and a.dequantization == "uniform" and raw.dequantization == "none"
    for split, originals in ((a.test, a.test_originals), (a.validation, a.validation_originals)):
        k = np.round(originals.astype(np.float64) * 255)
        u = split.astype(np.float64) * 256 - k  # the noise added to each level
        assert split.dtype == np.float32 and u.min() >= 0 and u.max() < 1
        assert 0.45 < u.mean() < 0.55 and 0.07 < u.var() < 0.1  # U(0, 1): mean 1/2, variance 1/12
    np.testing.assert_array_equal(a.test_originals, raw.test)
    np.testing.assert_array_equal(a.test, c.test)  # one fixed seed for the test set
    np.testing.assert_array_equal(dequantize(data.x_test, 5), dequantize(data.x_test, 5))
    assert not np.array_equal(dequantize(data.x_test, 5), dequantize(data.x_test, 6))
    # in training: the same map, with the batch's uniforms
    x = np.array([[0.0, 1.0, 128 / 255]], np.float32)
    u = np.array([[0.0, 0.999, 0.25]], np.float32)
    np.testing.assert_allclose(dequantize_batch(tf.constant(x), tf.constant(u)).numpy(),
                               [[0.0, 255.999 / 256, 128.25 / 256]], rtol=1e-6)
    with pytest.raises(DataError, match="not 8-bit levels.*--dequantize none"):
        dequantize(np.full((2, 3, 3, 1), 0.3, np.float32), 0, "test images")


def test_8_bit_levels_are_recognised_in_uint8_and_float_images():
    from tfvae.data import dequantize, is_8bit, resolve_dequantization

    levels = np.arange(256, dtype=np.uint8).reshape(1, 16, 16, 1)
    assert is_8bit(levels) and is_8bit(levels.astype(np.float32) / 255) and is_8bit(levels / 255.0)
    assert not is_8bit(np.full((1, 2, 2, 1), 0.3, np.float32))  # 76.5 / 255
    assert not is_8bit(np.full((1, 2, 2, 1), 0.502, np.float32))  # 128.01 / 255
    assert not is_8bit(np.full((1, 2, 2, 1), 128.5 / 255, np.float64))
    assert not is_8bit(np.array([0.5 / 256, 1 / 255]))  # a multiple of 1/256, not of 1/255
    x = dequantize(levels, 1, "the levels")  # uint8 in, (k + u) / 256 out
    k = np.arange(256).reshape(1, 16, 16, 1)
    assert x.dtype == np.float32 and np.all((x * 256 >= k) & (x * 256 < k + 1))
    np.testing.assert_array_equal(dequantize(levels.astype(np.float32) / 255, 1), x)
    with pytest.raises(DataError, match="^the pixels: --dequantize uniform"):
        dequantize(np.full((1, 2, 2, 1), 0.3), 0, "the pixels")
    # the default: uniform for a Gaussian on 8-bit images that are not binarized, else none
    assert resolve_dequantization(None, "gaussian", "none", levels) == "uniform"
    assert resolve_dequantization(None, "gaussian", "none", np.full((1, 2, 2, 1), 0.3)) == "none"
    assert resolve_dequantization(None, "gaussian", "dynamic", levels) == "none"
    assert resolve_dequantization(None, "bernoulli", "none", levels) == "none"
    assert resolve_dequantization(None, "logistic", "none", levels) == "none"
    assert resolve_dequantization("none", "gaussian", "none", levels) == "none"
    assert resolve_dequantization("uniform", "bernoulli", "dynamic", levels) == "uniform"  # checked elsewhere


def test_pixels_are_floats_in_0_1_and_binarized_with_their_intensity():
    from tfvae.data import binarize

    levels = np.array([[0, 51, 255]], np.uint8)
    f = as_float(levels)
    assert f.dtype == np.float32 and f.tolist() == [[0.0, np.float32(51) / np.float32(255), 1.0]]
    same = np.array([[0.25, 0.5]], np.float32)
    assert as_float(same) is same  # floats pass through without a copy
    assert as_float(np.array([[0.5]], np.float64)).dtype == np.float32
    grey = np.full((4000, 3), 0.2, np.float32)
    b = binarize(grey, 7)
    assert b.dtype == np.float32 and set(np.unique(b)) == {0.0, 1.0} and abs(b.mean() - 0.2) < 0.01
    np.testing.assert_array_equal(b, binarize(grey, 7))
    assert not np.array_equal(b, binarize(grey, 8))
    assert binarize(np.array([[0, 255]], np.uint8), 0).tolist() == [[0.0, 1.0]]


def test_tfds_path_with_mock_data(monkeypatch):
    import tensorflow_datasets as tfds

    import tfvae.data.tfds_source as source

    # mock_data replaces the download and the files; only the reachability probe is left to stub.
    monkeypatch.setattr(source, "network_reachable", lambda timeout=3.0: True)
    with tfds.testing.mock_data(num_examples=40):
        data = load_source("mnist")
    assert data.x_train.shape == (40, 28, 28, 1) and data.x_test.shape == (40, 28, 28, 1)
    assert data.y_train is not None and data.class_names is not None and len(data.class_names) == 10
    assert data.x_train.dtype == np.uint8


def test_reachability_probe_follows_the_proxy(monkeypatch):
    from tfvae.data.tfds_source import network_reachable

    with socket.socket() as server:  # a proxy that accepts connections
        server.bind(("127.0.0.1", 0))
        server.listen()
        monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{server.getsockname()[1]}")
        assert network_reachable(timeout=2.0)
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{closed_port()}")  # nothing listens there
    assert not network_reachable(timeout=2.0)


def test_unknown_tfds_name(tmp_path):
    with pytest.raises(DataError, match="unknown dataset 'no_such_dataset_xyz'"):
        load_source("no_such_dataset_xyz", data_dir=str(tmp_path))
