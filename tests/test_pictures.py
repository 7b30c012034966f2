"""The picture commands: PNGs of the expected size, refusals of what a run cannot draw."""

import pytest

from conftest import one_error_line, run_cli


def _png_size(path):
    import tensorflow as tf

    data = open(path, "rb").read()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return tuple(tf.io.decode_png(data).shape)


@pytest.mark.parametrize("run,args,shape", [
    ("vae2", ["sample", "-n", "16"], (4 * 28 + 5 * 2, 4 * 28 + 5 * 2, 1)),
    ("vae2", ["sample", "-n", "6", "--mean"], (2 * 28 + 3 * 2, 3 * 28 + 4 * 2, 1)),
    ("vae2", ["sample", "-n", "6", "--sampled-pixels"], (2 * 28 + 3 * 2, 3 * 28 + 4 * 2, 1)),
    ("vae2", ["reconstruct", "-n", "5"], (2 * 28 + 3 * 2, 5 * 28 + 6 * 2, 1)),
    ("dae", ["reconstruct", "-n", "5"], (3 * 28 + 4 * 2, 5 * 28 + 6 * 2, 1)),  # + corrupted inputs
    ("vae2", ["manifold", "--grid", "5", "--no-axes"], (5 * 28, 5 * 28, 1)),
    ("vae5", ["manifold", "--grid", "4", "--no-axes"], (4 * 28, 4 * 28, 1)),
    ("vae2", ["manifold", "--grid", "5"], None),  # with the z values on axes: a figure
    ("ae", ["interpolate", "--from", "0", "--to", "3", "--steps", "6"], (2 * 28 + 3 * 2, 6 * 28 + 7 * 2, 1)),
    ("vae2", ["latents"], None),
    ("vae5", ["latents"], None),
    ("ae", ["latents"], None),
    ("vae2", ["curves"], None),
    ("hvae2", ["sample", "-n", "16"], (4 * 28 + 5 * 2, 4 * 28 + 5 * 2, 1)),
    ("hvae2", ["sample", "-n", "6", "--mean"], (2 * 28 + 3 * 2, 3 * 28 + 4 * 2, 1)),
    ("hvae2", ["reconstruct", "-n", "5"], (2 * 28 + 3 * 2, 5 * 28 + 6 * 2, 1)),
    ("hvae2", ["manifold", "--grid", "5", "--no-axes"], (5 * 28, 5 * 28, 1)),
    ("hvae2", ["manifold", "--grid", "5"], None),
    ("hvae2", ["interpolate", "--from", "0", "--to", "3", "--steps", "6"], (2 * 28 + 3 * 2, 6 * 28 + 7 * 2, 1)),
    ("hvae2", ["latents"], None),
    ("hvae2", ["curves"], None),
    ("ae", ["curves"], None),
])
def test_picture_commands_write_pngs_of_the_expected_size(capsys, tmp_path, runs, run, args, shape):
    out = tmp_path / "pic.png"
    code, stdout, err = run_cli(capsys, args[0], runs[run], *args[1:], "-o", out)
    assert code == 0, err
    assert f"wrote {out}" in stdout
    size = _png_size(out)
    if shape is not None:
        assert size == shape
    else:  # matplotlib figures: RGB, a sensible size
        assert size[2] == 3 and size[0] > 200 and size[1] > 200


@pytest.mark.parametrize("run,args,message", [
    ("ae", ["manifold"], "manifold needs a vae, iwae or hvae run"),
    ("vae1", ["manifold"], "manifold needs at least 2 latent dimensions"),
    ("vae1", ["latents"], "latents needs at least 2 latent dimensions"),
    ("ae", ["sample"], "sample needs a vae, iwae or hvae run"),
    ("ae", ["interpolate", "--from", "0", "--to", "9999"], "--to 9999 is out of range"),
    ("ae", ["sample", "-o", "x.jpg"], "must end in .png"),
])
def test_picture_commands_refuse_what_they_cannot_draw(capsys, tmp_path, runs, run, args, message):
    argv = [args[0], runs[run], *args[1:]]
    if "-o" not in argv:
        argv += ["-o", tmp_path / "pic.png"]
    code, _, err = run_cli(capsys, *argv)
    assert code != 0 and message in one_error_line(err)
    assert not (tmp_path / "pic.png").exists()


def test_an_output_under_a_file_is_refused_before_the_run_is_read(capsys, tmp_path):
    (tmp_path / "afile").write_text("not a folder")
    (tmp_path / "notarun").mkdir()  # were the run read first, this would be the error
    code, _, err = run_cli(capsys, "sample", tmp_path / "notarun", "-o", tmp_path / "afile" / "pics" / "s.png")
    assert code != 0
    assert f"{tmp_path / 'afile'} is a file, not a directory; choose another output path" in one_error_line(err)




def test_the_manifold_slice_lies_where_the_prior_has_its_codes():
    """The two dimensions at the prior's quantiles; the others at 0 for N(0, I), at the medians of a
    learned prior (a class's Gaussian far from 0: the slice goes through that class's codes)."""
    import numpy as np

    from tfvae.pictures import manifold_codes
    from tfvae.probability.priors import ClassPrior, StandardNormal

    z, ticks = manifold_codes(StandardNormal(4), (1, 3), 3)
    np.testing.assert_allclose(ticks[:, 0], [-0.9674, 0.0, 0.9674], atol=1e-3)  # Phi^-1(1/6, 1/2, 5/6)
    assert np.all(z[:, [0, 2]] == 0)
    np.testing.assert_allclose(z[0, [1, 3]], [ticks[0, 0], ticks[2, 1]])  # top left: dimension 3 grows upwards
    prior = ClassPrior(4, 2)
    prior.layer.build(None)
    prior.layer["loc"].assign(np.array([[0, 0, 0, 0], [5, 6, 7, 8]], np.float32))
    z, ticks = manifold_codes(prior.given(np.array([1], np.int32)), (1, 3), 3)
    np.testing.assert_allclose(z[:, [0, 2]], np.tile([5.0, 7.0], (9, 1)), atol=1e-5)  # class 1's means
    np.testing.assert_allclose(ticks[1], [6.0, 8.0], atol=1e-5)
