"""Anomaly scores: how badly a trained model explains each image.

The score is the negative ELBO for variational models (nats) and the reconstruction loss for
autoencoders; higher means more anomalous. With labels, `separation` measures how well the score
tells a set of classes from the rest: the ROC AUC on the test split, and a threshold chosen on the
validation split (the one maximising TPR - FPR) applied to the test split.
"""

from __future__ import annotations

import numpy as np

from tfvae.errors import TfvaeError


def scores(model, x, seed: int = 0, batch_size: int = 500, samples: int = 1, labels=None) -> np.ndarray:
    """One score per image (float64), the family's: the negative ELBO, or the reconstruction loss
    (`model.score_description` says which)."""
    from tfvae.evaluation import per_image_terms

    if len(x) == 0:
        return np.zeros(0)
    return per_image_terms(model, x, seed=seed, batch_size=batch_size, samples=samples, labels=labels)["score"]


def anomaly_classes(labels, normal=None, anomalous=None) -> list:
    """The anomaly classes among `labels` (every label occurring in the data): those given as
    `anomalous`, or every label that is not in `normal`. Exactly one of the two is given."""
    if (normal is None) == (anomalous is None):
        raise TfvaeError("give either the normal classes or the anomaly classes, not both or neither")
    labels = np.unique(np.asarray(labels))
    given = [int(c) for c in (normal if normal is not None else anomalous)]
    missing = [c for c in given if c not in labels]
    if missing:
        raise TfvaeError(f"class(es) {missing} do not occur; the labels are {', '.join(map(str, labels))}")
    return [int(c) for c in labels if c not in given] if normal is not None else sorted(set(given))


def scores_csv(test_scores, test_labels=None, anomalies=None, threshold=None) -> str:
    """CSV text, one row per image: index, label, score, then whether the label is an anomaly
    class (when `anomalies` is given) and whether the score is above `threshold` (when given)."""
    import csv
    import io

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["index", "label", "score"] + (["anomaly"] if anomalies is not None else [])
                    + (["flagged"] if threshold is not None else []))
    for i, s in enumerate(test_scores):
        label = int(test_labels[i]) if test_labels is not None else ""
        row = [i, label, f"{s:.6f}"]
        if anomalies is not None:
            row.append(int(label in anomalies))
        if threshold is not None:
            row.append(int(s > threshold))
        writer.writerow(row)
    return buf.getvalue()


def roc_auc(score: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve of `score` for `positive` (True = anomaly), ties counted half
    (the Mann-Whitney U statistic)."""
    score = np.asarray(score, np.float64)
    positive = np.asarray(positive, bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        raise ValueError("the ROC AUC needs both anomalies and normal examples")
    order = np.argsort(score, kind="mergesort")
    ranks = np.empty(len(score), np.float64)
    sorted_scores = score[order]
    i = 0
    while i < len(score):  # average ranks over ties
        j = i
        while j + 1 < len(score) and sorted_scores[j + 1] == sorted_scores[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    u = ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def best_threshold(score: np.ndarray, positive: np.ndarray) -> float:
    """The threshold (flag score > t) that maximises TPR - FPR (Youden's J) on these examples."""
    score = np.asarray(score, np.float64)
    positive = np.asarray(positive, bool)
    candidates = np.concatenate([[score.min() - 1.0], np.unique(score)])
    pos, neg = np.sort(score[positive]), np.sort(score[~positive])
    tpr = (len(pos) - np.searchsorted(pos, candidates, side="right")) / max(1, len(pos))
    fpr = (len(neg) - np.searchsorted(neg, candidates, side="right")) / max(1, len(neg))
    return float(candidates[int(np.argmax(tpr - fpr))])


def classification(score, positive, threshold) -> dict:
    flagged = np.asarray(score) > threshold
    positive = np.asarray(positive, bool)
    tp = int((flagged & positive).sum())
    fp = int((flagged & ~positive).sum())
    fn = int((~flagged & positive).sum())
    tn = int((~flagged & ~positive).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {
        "accuracy": (tp + tn) / max(1, len(flagged)),
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "false_positive_rate": fp / (fp + tn) if fp + tn else 0.0,
    }


def separation(val_score, val_labels, test_score, test_labels, anomaly_classes) -> dict:
    """AUC on test, threshold from validation, and the test classification at that threshold.

    Without validation images (a run trained with --validation-split 0: pass None for both) the
    AUC is still measured and the threshold is left out: choosing it on the test images would
    grade the threshold on the data that chose it.
    """
    anomaly_classes = np.asarray(sorted(anomaly_classes))
    test_pos = np.isin(test_labels, anomaly_classes)
    val_pos = None if val_score is None else np.isin(val_labels, anomaly_classes)
    for split, positive in (("validation", val_pos), ("test", test_pos)):
        if positive is None:
            continue
        if positive.all() or not positive.any():
            what = "normal" if positive.all() else "anomalous"
            raise TfvaeError(
                f"the {split} split has no {what} images (anomaly classes {anomaly_classes.tolist()}); "
                "both kinds are needed: choose other classes or a larger --validation-split"
            )
    result = {
        "anomaly_classes": [int(c) for c in anomaly_classes],
        "test_anomalies": int(test_pos.sum()),
        "test_normal": int((~test_pos).sum()),
        "roc_auc": roc_auc(test_score, test_pos),
    }
    if val_pos is not None:
        threshold = best_threshold(val_score, val_pos)
        result.update(validation_roc_auc=roc_auc(val_score, val_pos), threshold=threshold,
                      test_at_threshold=classification(test_score, test_pos, threshold))
    return result
