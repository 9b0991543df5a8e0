"""Parity with the figures of two peer libraries (../shared/parity/peer_cases.json).

See ``shared/parity/README.md``: on the MSP confidence of each case,

* ``trapezoid`` AUGRC = fd-shifts' AUGRC (ties included);
* ``torch-uncertainty`` AURC = torch-uncertainty's AURC (tie-free cases);
* ``risk@cov=0.8`` = torch-uncertainty's risk at 80 % coverage where 0.8·N is an integer;
* ``mean``/``trapezoid`` AURC and ``mean`` AUGRC = an independent implementation of SPEC.
"""

from __future__ import annotations

import json
import os
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from sc_eval import evaluate

TOL = 1e-6


def _cases_path() -> Path | None:
    """tests/data/peer_cases.json is a verbatim copy of shared/parity/peer_cases.json."""
    candidates = [
        os.environ.get("SC_EVAL_PARITY_CASES"),
        Path(__file__).parent / "data" / "peer_cases.json",
        Path(__file__).resolve().parents[1] / "shared" / "parity" / "peer_cases.json",
        Path(__file__).resolve().parents[2] / "shared" / "parity" / "peer_cases.json",
    ]
    for c in candidates:
        if c and Path(c).is_file():
            return Path(c)
    return None


CASES_PATH = _cases_path()
CASES = json.loads(CASES_PATH.read_text())["cases"] if CASES_PATH else []


def _evaluate(case, convention):
    z = np.asarray(case["logits"], dtype=np.float32)
    y = np.asarray(case["labels"], dtype=np.int64)
    ev = evaluate(z, y, scores=["msp"], convention=convention, coverages=[0.8], risks=[])
    return ev.scores["msp"].metrics


def _ids():
    return [f"case{i}-n{len(c['labels'])}" for i, c in enumerate(CASES)]


def test_all_cases_are_present():
    assert CASES_PATH is not None, "peer_cases.json not found (tests/data/ or shared/parity/)"
    assert len(CASES) == 27
    assert any(len({tuple(r) for r in c["logits"]}) < len(c["logits"]) for c in CASES), (
        "expected some cases with exact ties"
    )


@pytest.mark.parametrize("case", CASES, ids=_ids())
def test_trapezoid_augrc_equals_fd_shifts(case):
    got = _evaluate(case, "trapezoid")
    assert got["augrc"] == pytest.approx(case["fd_shifts"]["augrc"], abs=TOL)


@pytest.mark.parametrize("case", CASES, ids=_ids())
def test_reference_figures(case):
    mean = _evaluate(case, "mean")
    trap = _evaluate(case, "trapezoid")
    assert mean["aurc"] == pytest.approx(case["ref"]["aurc_mean"], abs=TOL)
    assert trap["aurc"] == pytest.approx(case["ref"]["aurc_trapezoid"], abs=TOL)
    assert mean["augrc"] == pytest.approx(case["ref"]["augrc_mean"], abs=TOL)


TU_CASES = [c for c in CASES if "torch_uncertainty" in c]


@pytest.mark.parametrize("case", TU_CASES, ids=[f"n{len(c['labels'])}" for c in TU_CASES])
def test_torch_uncertainty_aurc(case):
    got = _evaluate(case, "torch-uncertainty")
    assert got["aurc"] == pytest.approx(case["torch_uncertainty"]["aurc"], abs=TOL)


RISK80_CASES = [c for c in TU_CASES if Fraction(4, 5) * len(c["labels"]) % 1 == 0]


@pytest.mark.parametrize("case", RISK80_CASES, ids=[f"n{len(c['labels'])}" for c in RISK80_CASES])
def test_risk_at_80_coverage_equals_torch_uncertainty(case):
    for convention in ("mean", "trapezoid", "torch-uncertainty"):
        got = _evaluate(case, convention)
        assert got["risk@cov=0.8"] == pytest.approx(
            case["torch_uncertainty"]["risk_at_80cov"], abs=TOL
        )


def test_parity_subsets_are_not_empty():
    assert len(TU_CASES) >= 10
    assert len(RISK80_CASES) >= 5
