"""Mutation testing of the numerics: would the tests notice a wrong number?

mutmut (3.x) rewrites, one at a time, each operator, constant and call of the code that computes
tfvae's reported numbers (a `+` made `-`, a `1e-3` made `1.001e-3`, an argument dropped, ...) and
runs the tests that reach the changed function; a mutant the tests let pass "survives". The score is
the fraction killed. Survivors worth nothing are equivalent mutants (the change cannot alter a
result: a default that every caller overrides, a clip bound below float32 resolution); the others
are missing tests.

What is mutated (`TARGETS`): the objectives (ELBO, IWAE bound, the score-function surrogate,
penalties, corruption, binarization, dequantization), the probability parts (likelihoods, the
posterior, the priors), the evaluation's numbers (importance-sampled log p(x), the bound's terms,
bits per dimension, active units, the scale floor), the anomaly score with its AUC and threshold,
the functions that turn images into pixels (`as_float`, `binarize`, `is_8bit`, `dequantize`,
`resolve_dequantization`), and the ex-post prior's EM and its choice of training images. Left out: the text of reports and errors (`format_report`,
`scores_csv`, the lines that raise), `evaluate` and `separation`, which gather these numbers into
a report's dictionary (their keys are checked by the command tests), `step_shape` (a speed
setting; `test_log_px_does_not_depend_on_chunk_or_batch_size` covers its results), and the input
checks of `as_images` and `prepare` (the bad-input tests cover them).

The run happens in a scratch copy of the working tree (`--scratch`, default
/tmp/tfvae-mutation): mutmut writes a `mutants/` folder and a setup.cfg there, never here.

    python bench/mutation.py                     # everything (about an hour on 2 cores)
    python bench/mutation.py --only objectives   # one module
    python bench/mutation.py --report            # the last run's score and survivors again

It prints the score per module and the survivors, and writes them to SCRATCH/mutation.json.
It needs mutmut 3 (`pip install "mutmut>=3.8,<4"`), which the test suite does not.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# module -> the functions of it that are mutated (None: all of them)
TARGETS = {
    "tfvae/objectives.py": None,
    "tfvae/probability/likelihoods.py": None,
    "tfvae/probability/posteriors.py": None,
    "tfvae/probability/priors.py": None,
    "tfvae/evaluation.py": ["_batches", "per_image_terms", "bound_metrics", "_sample_noise", "log_likelihood",
                            "scale_at_floor", "bits_per_dim", "active_units", "active_units_per_layer"],
    "tfvae/anomaly.py": ["scores", "roc_auc", "best_threshold", "classification"],
    "tfvae/data/__init__.py": ["as_float", "binarize", "is_8bit", "dequantize", "resolve_dequantization"],
    "tfvae/expost.py": ["fit_mixture", "pick_images"],
}

# The tests that guard these modules: their unit tests and the models' oracles (probabilistic PCA,
# the exact posteriors, the denoising and contractive oracles). The end-to-end tests (commands,
# exports, resume) reach the same functions but would make each mutant cost minutes.
TESTS = [
    "tests/test_objectives.py",
    "tests/probability",
    "tests/test_evaluation.py",
    "tests/test_anomaly.py",
    "tests/test_data.py",
    "tests/models/test_vae.py",
    "tests/models/test_iwae.py",
    "tests/models/test_ae.py",
    "tests/models/test_sae.py",
    "tests/models/test_dae.py",
    "tests/models/test_cae.py",
    "tests/models/test_gradient_estimator.py",
    # the tests that train runs or call commands first: minutes per mutant, and covered above
    "-k", "not command and not held_out and not trains_exports and not real_fashion and not tfds_path"
          " and not reachability and not python_score and not 8_bit_images and not which_input_it_was"
          " and not refuses_a_split and not score_without_a_validation and not early_stopping"
          " and not training_line",
]

# Lines not mutated: the raising of errors (their messages are text, tested elsewhere) and imports.
SKIP_LINES = [r"^\s*raise \w+", r"^\s*from ", r"^\s*import "]

# Survivors that cannot change a reported number, by what the mutation touches (a regular
# expression searched in the mutant's diff) and why. The report sorts the survivors into these
# and the rest, which are missing tests.
EQUIVALENT = [
    (r"training=(None|False|True)|training\)|, \)\[.code.\]|z, (None)?\)|^-def \w+\(.*training=True|xb, eps, \)",
     "the training flag: no layer tfvae builds (dense, convolutions, gates) acts differently in training"),
    (r"astype\(None\)|asarray\(\w+, (None)?\)|empty\(.*, (None)?\)|array\(\[.*\], (None)?\)|ones\(.*, (None)?\)|"
     r"zeros\(.*, (None)?\)|dtype=None|, \)\)\.numpy|convert_to_tensor\(\w+, (None)?\)|tf\.int32\)|"
     r"tf\.constant\(\[seed, i\], (None)?\)|tf\.constant\(labels\[a:b\], (None)?\)|"
     r"tf\.constant\(\[20240, 2\], (None)?\)|TensorSpec\(|\(\[self\.k\], \)|x\.shape, \)|seeds\[0\], \)|n, \)\[0\]|"
     r"copy=None",
     "a dtype left to its default: numpy's float64 or the input's own dtype, which is the one asked for"),
    (r"axis=\+1|shape\[\+1\]|\[\+1\]",
     "axis +1 for -1 on a tensor of rank 2, where they are the same axis"),
    (r"batch_size: int = 501|k: int = 5001|seed: int = 1|samples: int = 2|first_index: int = 1|"
     r"where: str = \"(XX)?(images|IMAGES)(XX)?\"|init: str = \"(XXdataXX|DATA)\"|description: str = \"",
     "a default that the callers always pass, or on which no result depends (the batch size)"),
    (r"(noise|scaled|variance|scale|x|u|d) (>|<|<=|>=) |<= HALF_BIN|>= 1\.0 - HALF_BIN|\) <= as_float|"
     r"<= 1e-3|>= threshold|< lik\.min_scale",
     "a comparison changed only where two continuous values are exactly equal (probability 0, or no "
     "8-bit level lies there)"),
    (r"math\.log\(3\.0\)",
     "the switch point of log1mexp: both formulas are accurate between log 2 and log 3"),
    (r"kind=|argsort\(score, \)|i <= len\(score\)|order\[i:j \+ 2\]",
     "ranking: ties get their average rank whatever the sort, and a rank written one past a tie is "
     "overwritten by the next group"),
    (r"7412|1000001|20241|\[20240, 3\]|100001|stateless_split\(.*, (3)?\)|seeds\[1\], dtype|"
     r"loc - self\._scale|loc, k\) - |loc - self\.scale|u - self\.NOISE_STD",
     "another seed or the mirror image of symmetric noise: the same distribution, other draws"),
    (r"name=None|\(self, loc, scale, name=|parameters|validate_args|allow_nan_stats|reparameterization_type|ParameterProperties|"
     r"TensorShape\(None\)|\"(XX)?(DiscretizedLogistic|discretizedlogistic|DISCRETIZEDLOGISTIC)|"
     r"maxval=None|minval=1e-7, seed|uniform\(shape, maxval|maxval=1\.0 \+ 1e-7|, seed=None|maxval=1\.0 - 1e-7, \)",
     "TFP's bookkeeping of the discretized logistic class (its name, checks and parameter table), or "
     "the uniform's open ends, which a draw meets with probability 0"),
    (r"jit_compile|reduce_retracing|batch_size, None, jit|total_blocks \+ first_block",
     "how the importance sampler is compiled and chunked (a step may draw blocks it then leaves out): "
     "the estimate does not depend on it (tested)"),
    (r"keepdims=(None|False)|reduce_sum\(f, axis=0, \)|reduce_sum\(f, (axis=None, )?keepdims=True\) - f\) / n",
     "the batch baseline's shape: that branch runs with L = 1, where f is (batch, 1): summing over "
     "axis 0 or over all, (1,) or (1, 1), are the same"),
    (r"log_q, (axis=None)?\)",
     "the surrogate per image or its batch mean on every image: it is 0 in value and the loss is summed "
     "over the batch, so the gradient is the same"),
    (r"\"constant\"|reinterpreted_batch_ndims=None|Independent\(tfd\.Normal\(\w+, \w+\), \)|"
     r"Independent\(base, \)|Independent\(tfd\.Normal\(self\.loc, self\.scale\), \)|learned_weights=None|"
     r"reshape\(None\)",
     "an argument whose default does the same here (Keras reads class names in any case, Independent "
     "reinterprets all but the batch axis, a falsy flag, images already of the image shape)"),
]

STATUS = {1: "killed", 3: "killed", 0: "survived", 5: "no tests", 33: "no tests", 34: "skipped", 35: "suspicious",
          36: "timeout", 37: "killed", -24: "timeout", 24: "timeout", 152: "timeout", 255: "timeout",
          -11: "segfault", -9: "segfault", None: "not checked"}


def module_name(path: str) -> str:
    return path[:-3].replace("/__init__", "").replace("/", ".")


def mutant_globs(only=None) -> list:
    globs = []
    for path, functions in TARGETS.items():
        if only and not any(o in path for o in only):
            continue
        mod = module_name(path)
        if functions is None:
            globs.append(f"{mod}.*")
        else:
            globs += [f"{mod}.x_{f}__mutmut_*" for f in functions]
    return globs


def copy_tree(scratch: str, keep_mutants: bool = False) -> None:
    """The working tree (tracked and untracked, not ignored files) into `scratch`; with
    keep_mutants, over an earlier copy whose mutants/ (and so its verdicts) stay."""
    files = subprocess.run(["git", "ls-files", "-co", "--exclude-standard"], cwd=ROOT, check=True,
                           capture_output=True, text=True).stdout.split("\n")
    if os.path.isdir(scratch) and not keep_mutants:
        shutil.rmtree(scratch)
    elif keep_mutants:  # new tests: mutmut must learn again which tests reach which function
        stats = os.path.join(scratch, "mutants", "mutmut-stats.json")
        if os.path.exists(stats):
            os.remove(stats)
    for f in filter(None, files):
        src = os.path.join(ROOT, f)
        if not os.path.isfile(src):
            continue
        dst = os.path.join(scratch, f)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copy2(src, dst)


def write_config(scratch: str, tests: list) -> None:
    def block(key, values):
        return f"{key} =\n" + "".join(f"    {v}\n" for v in values)

    with open(os.path.join(scratch, "setup.cfg"), "w") as f:
        f.write("[mutmut]\n")
        f.write("source_paths = tfvae\n")
        f.write(block("only_mutate", list(TARGETS)))
        f.write(block("pytest_add_cli_args_test_selection", tests))
        f.write(block("pytest_add_cli_args", ["-p", "no:cacheprovider", "--durations=0"]))
        f.write(block("do_not_mutate_patterns", SKIP_LINES))
        f.write("process_isolation = forkserver\n")
        f.write("forkserver_warmup = collect\n")
        f.write("use_setproctitle = false\n")
        f.write("use_git_change_detection = false\n")
        f.write("timeout_multiplier = 5.0\n")


def collect(scratch: str, only=None) -> dict:
    """{mutant: status} for the targeted mutants, read from mutmut's files."""
    keep = [re.compile(fnmatch_to_re(g)) for g in mutant_globs(only)]
    out = {}
    for dirpath, _, names in os.walk(os.path.join(scratch, "mutants", "tfvae")):
        for n in names:
            if not n.endswith(".meta"):
                continue
            with open(os.path.join(dirpath, n)) as f:
                meta = json.load(f)
            for key, code in meta.get("exit_code_by_key", {}).items():
                if any(k.fullmatch(key) for k in keep):
                    out[key] = STATUS.get(code, "suspicious")
    return out


def fnmatch_to_re(glob: str) -> str:
    return re.escape(glob).replace(r"\*", ".*")


def diff(scratch: str, mutant: str) -> str:
    r = subprocess.run([sys.executable, "-m", "mutmut", "show", mutant], cwd=scratch, capture_output=True, text=True)
    lines = [ln for ln in r.stdout.splitlines() if ln[:1] in "+-" and not ln.startswith(("+++", "---"))]
    return " | ".join(ln.strip() for ln in lines)


def report(scratch: str, only=None, show_diffs: bool = True) -> dict:
    results = collect(scratch, only)
    if not results:
        raise SystemExit(f"no mutation results under {scratch}/mutants: run bench/mutation.py first")
    by_module = {}
    for key, status in results.items():
        mod = key.split(".x")[0]  # tfvae.evaluation.x_f__mutmut_3, tfvae.m.xǁClassǁf__mutmut_1
        by_module.setdefault(mod, {}).setdefault(status, 0)
        by_module[mod][status] += 1
    print(f"{'module':36s} {'mutants':>8s} {'killed':>7s} {'survived':>9s} {'other':>6s} {'score':>7s}")
    total_k = total_n = 0
    for mod in sorted(by_module):
        c = by_module[mod]
        n = sum(c.values())
        k = c.get("killed", 0) + c.get("timeout", 0)
        total_k, total_n = total_k + k, total_n + n
        other = n - k - c.get("survived", 0)
        print(f"{mod:36s} {n:8d} {k:7d} {c.get('survived', 0):9d} {other:6d} {k / n:7.1%}")
    print(f"{'all':36s} {total_n:8d} {total_k:7d} {sum(1 for s in results.values() if s == 'survived'):9d}"
          f" {'':6s} {total_k / total_n:7.1%}")
    survivors = sorted(k for k, s in results.items() if s not in ("killed", "timeout"))
    rows, reasons, known = [], {}, {}
    last = os.path.join(scratch, "mutation.json")
    if os.path.exists(last):  # the diffs of the last report (a mutant's diff never changes)
        with open(last) as f:
            known = {r["mutant"]: r["diff"] for r in json.load(f).get("not_killed", []) if r.get("diff")}
    for key in survivors:
        d = known.get(key) or (diff(scratch, key) if show_diffs else "")
        added = " ".join(part for part in d.split(" | ") if part.startswith("+"))
        why = next((why for pattern, why in EQUIVALENT if re.search(pattern, added)), None)
        rows.append({"mutant": key, "status": results[key], "diff": d, "equivalent": why})
        reasons.setdefault(why, []).append(rows[-1])
    if survivors:
        print(f"\n{len(survivors)} not killed:")
    for why, group in sorted(reasons.items(), key=lambda t: (t[0] is None, t[0] or "")):
        print(f"\n{len(group)} " + (f"equivalent: {why}" if why else "NOT equivalent: tests missing"))
        for r in group:
            print(f"  {r['status']:10s} {r['mutant']}\n             {r['diff'][:300]}")
    equivalent = sum(len(g) for w, g in reasons.items() if w)
    print(f"\nscore {total_k / total_n:.1%}; of the mutants not shown equivalent: "
          f"{total_k / max(1, total_n - equivalent):.1%} ({equivalent} equivalent)")
    summary = {"score": total_k / total_n, "mutants": total_n, "killed": total_k, "equivalent": equivalent,
               "by_module": by_module, "not_killed": rows}
    with open(os.path.join(scratch, "mutation.json"), "w") as f:
        json.dump(summary, f, indent=1)
    return summary


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scratch", default="/tmp/tfvae-mutation", help="where the copy is mutated")
    p.add_argument("--only", nargs="*", help="modules whose path contains one of these")
    p.add_argument("--tests", nargs="*", help="the tests to run (default: TESTS)")
    p.add_argument("--max-children", type=int, default=os.cpu_count() or 2)
    p.add_argument("--report", action="store_true", help="print the last run's results again")
    p.add_argument("--keep", action="store_true",
                   help="run more modules in the existing copy, keeping the verdicts it has")
    p.add_argument("--survivors", action="store_true",
                   help="copy today's tests over the last run and rerun only the mutants it did not kill")
    p.add_argument("--not-equivalent", action="store_true",
                   help="with --survivors: only those the last report did not find equivalent")
    p.add_argument("--also", nargs="*", default=[],
                   help="with --survivors: mutants to rerun as well (globs; e.g. those of a function changed since)")
    a = p.parse_args(argv)
    try:
        import mutmut  # noqa: F401
    except ImportError:
        raise SystemExit('bench/mutation.py needs mutmut 3: pip install "mutmut>=3.8,<4"') from None
    if not a.report:
        names = mutant_globs(a.only)
        if a.survivors:
            names = sorted(k for k, s in collect(a.scratch, a.only).items() if s not in ("killed", "timeout"))
            if a.not_equivalent:
                with open(os.path.join(a.scratch, "mutation.json")) as f:
                    equivalent = {r["mutant"] for r in json.load(f)["not_killed"] if r.get("equivalent")}
                names = [n for n in names if n not in equivalent]
            names += a.also
            if not names:
                raise SystemExit("every mutant of the last run was killed")
            print(f"rerunning the {len(names)} mutants the last run did not kill, with today's tests")
        if not a.keep:
            copy_tree(a.scratch, keep_mutants=a.survivors)
        write_config(a.scratch, a.tests or TESTS)
        t0 = time.time()
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONHASHSEED="0")
        subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", str(a.max_children), *names],
                       cwd=a.scratch, env=env)
        print(f"\nmutation run: {(time.time() - t0) / 60:.1f} min")
    report(a.scratch, a.only)


if __name__ == "__main__":
    main()
