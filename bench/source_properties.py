"""The data-source properties of tests/test_source_properties.py with a bigger budget.

    python bench/source_properties.py [--examples 300] [--source npz|folder|both] [--seed 0] [--quiet]

For each source (npz:FILE and folder:DIR) it generates --examples datasets (the suite runs a
derandomized handful; here --seed chooses them, and --seed random draws a fresh seed), fits a tiny
model on each (`tfvae.fit`, hidden 8-16, z = 2, one epoch, XLA off) and checks that the fit either
trains to finite metrics or refuses in one line that names what is wrong, and that it trains
exactly when the README says the dataset is valid. It prints a line per example, then per source:
the examples run, how many trained and how many were refused (by the reason the message names),
and the time. The exit status is 1 when a property failed (Hypothesis prints the smallest failing
dataset it found), 0 otherwise.
"""

import argparse
import os
import random
import re
import sys
import time
import traceback
from collections import Counter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "tests"))
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import test_source_properties as properties  # noqa: E402  (tests/, after the path)


def reason_of(message: str) -> str:
    """The first of the properties' refusal reasons a message names ("other" when none)."""
    for reason, pattern in properties.REASONS.items():
        if re.search(pattern, message, re.I):
            return reason
    return "other"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=300, help="generated datasets per source (default 300)")
    parser.add_argument("--source", choices=["npz", "folder", "both"], default="both")
    parser.add_argument("--seed", default="0", help="Hypothesis seed (an integer, or 'random'; default 0)")
    parser.add_argument("--quiet", action="store_true", help="no line per example")
    args = parser.parse_args(argv)
    seed = random.randrange(2**32) if args.seed == "random" else int(args.seed)
    sources = ["npz", "folder"] if args.source == "both" else [args.source]
    print(f"source properties: {args.examples} examples per source, seed {seed}", flush=True)

    summary, failed = {}, []
    for source in sources:
        outcomes, reasons, times = Counter(), Counter(), []
        state = {"t": time.perf_counter()}

        def report(src, case, outcome, detail, outcomes=outcomes, reasons=reasons, times=times, state=state):
            now = time.perf_counter()
            times.append(now - state["t"])
            state["t"] = now
            outcomes[outcome] += 1
            if outcome == "refused":
                reasons[reason_of(detail)] += 1
            if not args.quiet:
                what = (f"loss {detail['loss']:.3g}" if outcome == "trained" else detail)
                print(f"{src:6s} {sum(outcomes.values()):4d}  {outcome:7s} {times[-1]:5.1f}s  {case!r:.150s}\n"
                      f"{'':13s}-> {what:.200s}", flush=True)

        t0 = time.perf_counter()
        test = properties.source_property(source, args.examples, derandomize=False, seed=seed, report=report)
        try:
            test()
            ok = True
        except Exception:  # the property failed: Hypothesis has printed the falsifying example
            ok = False
            failed.append(source)
            traceback.print_exc()
        summary[source] = (ok, outcomes, reasons, time.perf_counter() - t0)

    print()
    for source, (ok, outcomes, reasons, seconds) in summary.items():
        total = sum(outcomes.values())
        refused = ", ".join(f"{r} {n}" for r, n in reasons.most_common())
        print(f"{source:6s} {'passed' if ok else 'FAILED'}: {total} examples in {seconds:.0f} s "
              f"({seconds / max(total, 1):.2f} s each): {outcomes['trained']} trained, {outcomes['refused']} refused"
              + (f" ({refused})" if refused else "")
              + ("" if ok else " (the counts include Hypothesis's shrinking)"), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
