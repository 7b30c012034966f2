"""Where a conditional run's label fidelity is lost; prints a README table.

    python bench/fidelity_ceiling.py runs/fmnist-cvae-vamp

The run's fidelity classifier (RUN/classifier.keras, trained on first use as `tfvae evaluate`
trains it) judges four sets of images, each 10,000 strong, and each image is asked to be the class
it was made for:

  real test images          the classifier's own accuracy: what a perfect generator would score
                            if its images were like the test set's
  test reconstructions      pixel means of p(x|z, y) at the posterior mean of each (binarized)
                            test image: what the decoder keeps of a real image's class
  z ~ q(z|x, y) of training the aggregate posterior of 1,000 (binarized) training images per
                            class, one z drawn for each, decoded to pixel means: the best any prior
                            p(z|y) can do with this decoder, since the prior that maximizes the
                            ELBO is this mixture
  z ~ p(z|y)                the label fidelity that `tfvae evaluate` reports (the same samples)
"""

import argparse
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("run", help="a conditional run (--condition label)")
    p.add_argument("--per-class", type=int, default=1000, help="training images per class for the aggregate posterior")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args()

    import tfvae
    from tfvae.data import as_float
    from tfvae.fidelity import label_fidelity, predict, run_classifier

    trained = tfvae.load(args.run)
    if not trained.model.conditional:
        sys.exit(f"error: {args.run} is not a conditional run (train it with --condition label)")
    splits = trained.splits()
    classifier, _ = run_classifier(trained, splits)
    names = splits.class_names or [str(c) for c in range(trained.config.label_classes)]
    rng = np.random.default_rng(args.seed)

    def batched(f, *arrays, size=1000):
        return np.concatenate([f(*(a[i:i + size] for a in arrays)) for i in range(0, len(arrays[0]), size)])

    classes = list(trained.model.label_rows(1))

    def score(images, y):
        """(the fraction classified as y, that fraction per class)."""
        hits = predict(classifier, images) == y
        return hits.mean(), [hits[y == c].mean() for c in classes]

    rows = {}
    y = splits.test_labels
    rows["real test images"] = score(splits.test_originals, y)
    codes = batched(lambda x, l: trained.encode(x, label=l), splits.test, y)
    rows["test reconstructions"] = score(batched(lambda z, l: trained.decode(z, label=l), codes, y), y)

    pick = np.concatenate([np.flatnonzero(splits.train_labels == c)[:args.per_class] for c in classes])
    x = as_float(splits.train[pick])
    if trained.config.binarization != "none":  # as the trainer sees them
        x = (rng.random(x.shape) < x).astype(np.float32)
    y = splits.train_labels[pick]

    def aggregate(x, label):
        z = trained.posterior(x, label=label).sample(seed=int(rng.integers(2**31))).numpy()
        return trained.decode(z, label=label)

    rows["z ~ q(z\\|x, y) of training images"] = score(batched(aggregate, x, y), y)
    f = label_fidelity(trained.model, classifier)
    rows["z ~ p(z\\|y): the label fidelity"] = (f["fidelity"], [f["per_class"][int(c)] for c in classes])

    print(f"{args.run}: the fraction classified as the class asked for\n")
    print("| images | all | " + " | ".join(names[c] for c in classes) + " |")
    print("| --- | ---: | " + " | ".join("---:" for _ in classes) + " |")
    for label, (total, per) in rows.items():
        print(f"| {label} | {100 * total:.1f}% | " + " | ".join(f"{100 * v:.1f}" for v in per) + " |")

if __name__ == "__main__":
    main()
