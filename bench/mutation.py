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
and the functions that turn images into pixels (`as_float`, `binarize`, `is_8bit`, `dequantize`,
`resolve_dequantization`). Left out: the text of reports and errors (`format_report`,
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

# Lines not mutated: the raising of errors (their messages are text, tested elsewhere) and
# annotations of types.
SKIP_LINES = [r"^\s*raise \w+", r"^\s*from ", r"^\s*import "]

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
        mod = key.split(".x")[0].split(".xǁ")[0]
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
    rows = []
    if survivors:
        print(f"\n{len(survivors)} not killed:")
    for key in survivors:
        d = diff(scratch, key) if show_diffs else ""
        rows.append({"mutant": key, "status": results[key], "diff": d})
        print(f"  {results[key]:10s} {key}\n             {d[:300]}")
    summary = {"score": total_k / total_n, "mutants": total_n, "killed": total_k, "by_module": by_module,
               "not_killed": rows}
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
