"""Anomaly scores: ROC AUC and thresholds, the score command and its Python twin."""

import json

import numpy as np
import pytest

from tfvae.anomaly import best_threshold, roc_auc

from conftest import one_error_line, run_cli


def test_roc_auc_and_threshold():
    assert roc_auc([1, 2, 3, 4], [False, False, True, True]) == 1.0
    assert roc_auc([4, 3, 2, 1], [False, False, True, True]) == 0.0
    assert roc_auc([1, 1, 1, 1], [False, True, False, True]) == 0.5
    assert roc_auc([0.1, 0.4, 0.35, 0.8], [False, False, True, True]) == pytest.approx(0.75)
    t = best_threshold(np.array([1.0, 2.0, 3.0, 10.0, 11.0]), np.array([False, False, False, True, True]))
    assert 3.0 <= t < 10.0
    assert roc_auc([1, 2, 3, 4], [0, 0, 1, 1]) == 1.0  # 0/1 labels read as booleans
    assert roc_auc([3, 1, 2], [True, False, False]) == 1.0  # one anomaly
    for one_kind in ([True, True], [False, False]):
        with pytest.raises(ValueError, match="needs both anomalies and normal examples"):
            roc_auc([1.0, 2.0], one_kind)
    # a single anomaly or a single normal image: TPR and FPR are fractions of one
    assert best_threshold([1, 3, 4, 5, 6, 7], [False, True, False, False, False, False]) == 1.0
    assert best_threshold([1, 2, 3, 6, 5], [True, True, True, True, False]) == 5.0
    assert best_threshold([1, 2, 3, 6, 5], [1, 1, 1, 1, 0]) == 5.0


def _scores_with_ties(seed, n=60):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 12, n).astype(np.float64) / 4, rng.random(n) < 0.3  # many ties


@pytest.mark.parametrize("seed", range(5))
def test_the_auc_is_the_fraction_of_anomaly_normal_pairs_ranked_right(seed):
    """Against the definition, pair by pair: P(s_anomaly > s_normal) + P(equal) / 2."""
    score, positive = _scores_with_ties(seed)
    diff = score[positive][:, None] - score[~positive][None, :]
    assert roc_auc(score, positive) == pytest.approx(np.mean((diff > 0) + 0.5 * (diff == 0)), abs=1e-12)


@pytest.mark.parametrize("seed", range(5))
def test_the_threshold_maximises_tpr_minus_fpr_and_the_counts_are_the_confusion_matrix(seed):
    from tfvae.anomaly import classification

    score, positive = _scores_with_ties(seed)

    def youden(t):
        flagged = score > t
        return flagged[positive].mean() - flagged[~positive].mean()

    best = max(youden(t) for t in np.concatenate([[score.min() - 1], score]))
    t = best_threshold(score, positive)
    assert youden(t) == pytest.approx(best, abs=1e-12) and t in set(score) | {score.min() - 1}
    c = classification(score, positive, t)
    flagged = score > t
    tp, fp = np.sum(flagged & positive), np.sum(flagged & ~positive)
    fn, tn = np.sum(~flagged & positive), np.sum(~flagged & ~positive)
    precision, recall = tp / (tp + fp), tp / (tp + fn)
    assert c == pytest.approx({"accuracy": (tp + tn) / len(score), "precision": precision, "recall": recall,
                               "f1": 2 * precision * recall / (precision + recall),
                               "false_positive_rate": fp / (fp + tn)}, abs=1e-12)
    none = classification(score, positive, score.max())  # nothing flagged
    assert none == {"accuracy": np.mean(~positive), "precision": 0.0, "recall": 0.0, "f1": 0.0,
                    "false_positive_rate": 0.0}
    assert classification(score, np.zeros_like(positive), t)["recall"] == 0.0
    # as many false alarms as hits, and as many misses: precision = recall = F1 = FPR = 1/2
    half = classification([1, 2, 3, 4], [False, True, False, True], 2.5)
    assert half == {"accuracy": 0.5, "precision": 0.5, "recall": 0.5, "f1": 0.5, "false_positive_rate": 0.5}
    # no normal images at all: no false-positive rate to speak of; one image
    assert classification([1, 2], [True, True], 1.5)["false_positive_rate"] == 0.0
    assert classification([3.0], [True], 1.0)["accuracy"] == 1.0
    assert best_threshold([1, 2], [True, True]) == 0.0  # flag everything: below the lowest score


def test_the_score_is_minus_the_elbo_and_the_autoencoders_reconstruction_loss():
    """Against independent values: the PPCA model's ELBO in closed form (analytic_elbo), and the
    summed cross-entropy of an autoencoder's logits (numpy)."""
    from tfvae.anomaly import scores

    from conftest import analytic_elbo, bce, exact_posterior_encoder, family_images, family_model, ppca, \
        ppca_data, ppca_model

    w, b = ppca()
    x, _ = ppca_data(w, b, n=20)
    worse = exact_posterior_encoder(w, b, shift=0.3, scale_factor=1.5)  # a gap between ELBO and log p(x)
    s = scores(ppca_model(w, b, shift=0.3, scale_factor=1.5), x, samples=4000, batch_size=16)
    np.testing.assert_allclose(s, -analytic_elbo(worse, w, b, x), atol=0.15)
    assert len(scores(ppca_model(w, b), x[:0])) == 0

    # a conditional model's score is given each image's label: -ELBO(x | y)
    from tfvae.evaluation import per_image_terms

    cond = family_model(model="vae", condition="label", label_classes=3)
    images, y = family_images(n=5, binary=True), np.array([2, 0, 1, 1, 2])
    np.testing.assert_array_equal(scores(cond, images, labels=y, batch_size=2),
                                  -per_image_terms(cond, images, labels=y, batch_size=2)["elbo"])
    np.testing.assert_array_equal(scores(cond, images, labels=y), scores(cond, images, seed=0, samples=1, labels=y))
    assert not np.allclose(scores(cond, images, labels=y, seed=5), scores(cond, images, labels=y))  # seeded draws

    ae = family_model(model="ae")
    images = family_images(n=7, binary=True)
    logits = ae.decoder(ae.encoder(images)["code"])["logits"].numpy()
    np.testing.assert_allclose(scores(ae, images, batch_size=3), bce(images, logits), rtol=1e-5)


def test_score_command_writes_one_score_per_image(capsys, tmp_path, runs):
    out = tmp_path / "s.csv"
    code, stdout, err = run_cli(capsys, "score", runs["vae2"], "-o", out, "--normal-class", "0,1,2,3")
    assert code == 0, err
    lines = out.read_text().splitlines()
    assert lines[0] == "index,label,score,anomaly,flagged" and len(lines) == 1 + 128
    assert "ROC AUC (test)" in stdout


def test_score_without_a_validation_split_gives_the_auc_and_no_threshold(capsys, tmp_path, runs):
    out = tmp_path / "s.csv"
    code, stdout, err = run_cli(capsys, "score", runs["vae2-noval"], "-o", out, "--normal-class", "0,1,2,3",
                                "--json", tmp_path / "s.json")
    assert code == 0, err
    assert "ROC AUC (test)" in stdout and "threshold: none, the run has no validation split" in stdout
    lines = out.read_text().splitlines()
    assert lines[0] == "index,label,score,anomaly" and len(lines) == 1 + 128
    sep = json.loads((tmp_path / "s.json").read_text())["separation"]
    assert "threshold" not in sep
    # the AUC of the CSV's own scores and labels, counted pair by pair: P(anomaly scores above normal)
    rows = [line.split(",") for line in lines[1:]]
    pos = np.array([float(r[2]) for r in rows if r[3] == "1"])
    neg = np.array([float(r[2]) for r in rows if r[3] == "0"])
    pairs = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    assert len(pos) and len(neg) and sep["roc_auc"] == pytest.approx(pairs.mean())


def test_python_score_matches_the_command_and_classes_resolve(capsys, tmp_path, runs):
    import tfvae
    from tfvae.anomaly import anomaly_classes
    from tfvae.data import load_splits
    from tfvae.errors import TfvaeError

    out = tmp_path / "s.csv"
    code, _, err = run_cli(capsys, "score", runs["vae2"], "-o", out, "--anomaly-class", "4,5")
    assert code == 0, err
    rows = [line.split(",") for line in out.read_text().splitlines()[1:]]
    trained = tfvae.load(runs["vae2"])
    test = load_splits(trained.config, class_filter=False).test
    np.testing.assert_allclose(trained.score(test), [float(r[2]) for r in rows], rtol=0, atol=2e-6)
    assert [r[3] for r in rows] == [str(int(r[1] in ("4", "5"))) for r in rows]
    labels = np.array([3, 0, 7, 3, 5])
    assert anomaly_classes(labels, normal=[0, 3]) == [5, 7]
    assert anomaly_classes(labels, anomalous=[7, 5, 7]) == [5, 7]
    for kwargs, message in ((dict(normal=[0, 9]), r"class\(es\) \[9\] do not occur; the labels are 0, 3, 5, 7"),
                            (dict(), "either the normal classes or the anomaly classes"),
                            (dict(normal=[0], anomalous=[3]), "not both")):
        with pytest.raises(TfvaeError, match=message):
            anomaly_classes(labels, **kwargs)


def test_score_refuses_a_split_without_both_kinds(capsys, tmp_path, runs):
    code, _, err = run_cli(capsys, "score", runs["vae2"], "-o", tmp_path / "s.csv", "--normal-class", "0,1,2,3,4,5,6,7")
    assert code != 0 and "has no anomalous images" in one_error_line(err)
    code, _, err = run_cli(capsys, "score", runs["vae2"], "-o", tmp_path / "s.csv", "--normal-class", "x")
    assert code != 0 and "--normal-class must be integers" in one_error_line(err)


def test_score_separates_a_held_out_class_of_real_fashion_mnist(capsys, tmp_path, fashion_mnist):
    from test_realdata import HELD_OUT_CLASS, independent_pixels_auc, score_held_out

    auc, baseline = score_held_out(capsys, tmp_path, fashion_mnist), independent_pixels_auc(fashion_mnist)
    assert auc > baseline, f"class {HELD_OUT_CLASS} held out: AUC {auc:.3f}, independent pixels {baseline:.3f}"


