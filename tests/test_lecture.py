"""docs/lecture.ipynb runs top to bottom (nbclient, a real kernel), shows what each section claims,
and its committed outputs are what a fresh run prints (numbers within a tolerance: training on
another CPU rounds differently)."""

import os
import re
import sys

import pytest

from conftest import ROOT

sys.path.insert(0, os.path.join(ROOT, "docs"))


@pytest.fixture(scope="module")
def fresh(fashion_mnist):
    import make_lecture

    return make_lecture.execute(make_lecture.build())


def _printed(nb):
    import make_lecture

    return make_lecture.text_outputs(nb)


def _numbers(pattern, text):
    """The numbers the pattern's groups catch, in order."""
    found = re.findall(pattern, text)
    return [float(v) for match in found for v in (match if isinstance(match, tuple) else (match,))]


def test_every_cell_runs_and_every_section_shows_a_picture_or_a_number(fresh):
    import make_lecture

    code = [c for c in fresh.cells if c.cell_type == "code"]
    assert len(code) == sum(kind == "code" for kind, _ in make_lecture.CELLS)
    for cell in code[1:]:
        kinds = {o.get("output_type") for o in cell.outputs}
        assert "error" not in kinds, cell.source[:80]
        has_picture = any("image/png" in o.get("data", {}) for o in cell.outputs)
        assert has_picture or "stream" in kinds, cell.source[:80]


def test_the_notebook_shows_what_the_course_claims(fresh):
    out = "\n".join(_printed(fresh))
    ae, sae = _numbers(r"activations below 0\.05:\s+([\d.]+)%", out)
    assert sae > ae + 20  # the sparse code is far sparser
    by_hand, tfvae_loss = _numbers(r"(?:by hand|reconstruction): ([\d.]+) nats", out)
    assert by_hand == tfvae_loss  # the course's cross-entropy is what tfvae trains on
    rows = re.findall(r"log p\(x\)\s+(-?[\d.]+)\s+ELBO\s+(-?[\d.]+)\s+KL\(q \|\| p\(z\|x\)\)\s+(-?[\d.]+)\s+"
                      r"ELBO \+ KL\s+(-?[\d.]+)", out)
    assert len(rows) == 8
    for i, (log_px, elbo, kl, total) in enumerate(rows):
        assert abs(float(total) - float(log_px)) <= 2e-4  # log p(x) = ELBO + KL(q || p(z|x))
        if i < 4:
            assert float(kl) == 0.0 and float(elbo) == float(log_px)  # the exact posterior: a tight bound
        else:
            assert float(kl) > 1 and float(elbo) < float(log_px)
    closed, = _numbers(r"closed form \(tfd.kl_divergence\):\s+([\d.]+)", out)
    mc, se = _numbers(r"Monte Carlo, 200,000 samples:\s+([\d.]+) \+- ([\d.]+)", out)
    assert abs(mc - closed) < 4 * se
    ratios = _numbers(r"reparameterized variance =\s+([\d.]+)", out)
    assert len(ratios) == 5 and min(ratios) > 3
    reparam, score = _numbers(r"validation ELBO after 5 epochs: (-[\d.]+)", out)
    assert reparam > score
    spread = _numbers(r"L=\d+: ([\d.]+)", out)
    assert spread == sorted(spread, reverse=True) and spread[-1] < spread[0] / 4  # ~ 1/sqrt(L)


def test_the_committed_notebook_is_what_a_fresh_run_prints(fresh):
    import make_lecture
    import nbformat

    committed = nbformat.read(make_lecture.NOTEBOOK, as_version=4)
    assert [c.source for c in committed.cells] == [c.source for c in make_lecture.build().cells], \
        "docs/lecture.ipynb is stale: python docs/make_lecture.py"
    problems = make_lecture.compare(committed, fresh, rtol=0.1)
    assert not problems, "\n".join(problems)
