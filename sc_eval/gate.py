"""CI gate: compare a candidate against a baseline and decide pass / fail.

A *rule* names a metric, the score it applies to (none for model metrics such
as ``acc``) and an absolute tolerance in display units (percentage points for
percent metrics such as AURC or accuracy, raw units otherwise). A rule fails
when the candidate is worse than the baseline by more than the tolerance, in
the direction the metric declares (``higher_is_better``).

Two kinds of baseline:

* a **JSON result** written by ``sc-eval score --format json`` — only the
  tolerance applies; the document must be a versioned sc-eval result computed
  with the same AURC convention on the same labels (``labels_sha256``);
* a **predictions file** on the same samples — both are evaluated here and,
  with ``alpha``, a rule fails only if the regression beyond the tolerance is
  also significant under a paired bootstrap: the one-sided p-value
  ``p = (#{b : regression_b <= tolerance} + 1) / (B + 1)`` must be below
  ``alpha``.

Exit codes (CLI): 0 every rule passed, 1 a rule failed, 2 bad input.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sc_eval import numbers as num
from sc_eval.comparison import align_predictions, drop_shared_rows
from sc_eval.errors import InputError, UsageError
from sc_eval.files import is_json, read_json
from sc_eval.io import Predictions
from sc_eval.metrics import (
    DEFAULT_SELECTIVE,
    FRACTION,
    MODEL_METRICS,
    canonical_metric_name,
    get_metric,
    metric_info,
)
from sc_eval.ood import bootstrap_views, require_views, view_of
from sc_eval.pipeline import (
    RESULT_SCHEMA,
    RESULT_VERSION,
    EvalOptions,
    Evaluation,
    ScoredSamples,
    evaluate_source,
)
from sc_eval.scores import SCORES
from sc_eval.sources import CheckpointOptions, KeyOptions, load_source
from sc_eval.stats import BootstrapResult, bootstrap_metrics

__all__ = [
    "DEFAULT_RULES",
    "GateReport",
    "Rule",
    "Verdict",
    "baseline_params",
    "check_rules",
    "gate_document",
    "is_json_baseline",
    "load_baseline_json",
    "parse_rules",
    "parse_tolerances",
    "run_gate",
]

DEFAULT_RULES: tuple[tuple[str, str | None], ...] = (("aurc", "msp"), ("acc", None))


@dataclass(frozen=True)
class Rule:
    """One gate rule.

    Attributes
    ----------
    metric : str
    score : str or None
        None for model metrics (``acc``, ``ece``, ``nll``, ``brier``).
    tolerance : float
        Allowed regression in display units (percentage points for percent metrics).
    """

    metric: str
    score: str | None
    tolerance: float

    @property
    def name(self) -> str:
        return f"{self.metric}[{self.score}]" if self.score else self.metric

    @property
    def higher_is_better(self) -> bool:
        return metric_info(self.metric).higher_is_better

    @property
    def scale(self) -> float:
        """Display units per fraction: 100 for percent metrics, 1 otherwise."""
        return 100.0 if metric_info(self.metric).percent else 1.0

    @property
    def unit(self) -> str:
        return "pp" if self.scale == 100.0 else ""


def parse_tolerances(text: str | None) -> tuple[float, dict[str, float]]:
    """``"0.1"`` → default 0.1; ``"aurc=0.1,acc=0.5"`` → per metric; both may be mixed."""
    default, per = 0.0, {}
    for part in [p.strip() for p in (text or "").split(",") if p.strip()]:
        name, eq, value = part.rpartition("=")
        try:
            tol = float(value)
        except ValueError:
            raise UsageError(f"tolerance '{part}' is not a number (e.g. 0.1 or aurc=0.1)") from None
        if not math.isfinite(tol) or tol < 0:
            raise UsageError(f"tolerance '{part}' must be a finite number >= 0")
        tol += 0.0  # -0 is 0
        if eq:
            if name.strip() in per:
                raise UsageError(f"--tolerance gives {name.strip()} twice")
            per[name.strip()] = tol
        else:
            default = tol
    return default, per


def parse_rules(metrics: Sequence[str], scores: Sequence[str], tolerance: str | None) -> list[Rule]:
    """Build rules from ``--metric``/``--score`` lists and ``--tolerance``.

    ``metrics[i]`` pairs with ``scores[i]``; a single score applies to every
    selective metric; model metrics ignore the score. With no ``--metric``
    the default rules are AURC of ``msp`` and accuracy.
    """
    default, per = parse_tolerances(tolerance)
    if not metrics:
        pairs = list(DEFAULT_RULES)
        if scores:
            pairs = [(m, scores[0] if s else None) for m, s in pairs]
    else:
        if len(scores) not in (0, 1, len(metrics)):
            raise UsageError(
                f"give one --score, or one per --metric ({len(metrics)}), got {len(scores)}"
            )
        pairs = []
        for i, m in enumerate(metrics):
            m = canonical_metric_name(m)  # scod:aurc is aurc (the default view)
            if m in MODEL_METRICS:
                pairs.append((m, None))
                continue
            get_metric(m)
            s = scores[i] if len(scores) == len(metrics) else (scores[0] if scores else "msp")
            pairs.append((m, s))
    per = {canonical_metric_name(k): v for k, v in per.items()}
    for name in per:
        if name not in {m for m, _ in pairs}:
            raise UsageError(f"--tolerance names metric '{name}' that no rule checks")
    return [Rule(m, s, per.get(m, default)) for m, s in pairs]


# --------------------------------------------------------------------------- baselines
def load_baseline_json(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and validate a baseline written by ``sc-eval score --format json``.

    Returns the first result of the document (a baseline describes one model).
    """
    doc = read_json(path, "baseline file")
    if not isinstance(doc, dict) or doc.get("schema") != RESULT_SCHEMA:
        raise InputError(
            f'not an sc-eval result (expected "schema": "{RESULT_SCHEMA}"); '
            "write one with `sc-eval score PREDS --format json -o baseline.json`",
            path=path,
            field="schema",
        )
    if doc.get("version") != RESULT_VERSION:
        raise InputError(
            f"result version {doc.get('version')!r} is not supported (expected {RESULT_VERSION})",
            path=path,
            field="version",
        )
    results = doc.get("results")
    if not isinstance(results, list) or not results or not isinstance(results[0], dict):
        raise InputError("expected a non-empty list of results", path=path, field="results")
    if len(results) != 1:
        raise InputError(
            f"holds {len(results)} results; a baseline describes one model: record it with "
            "`sc-eval score ONE_FILE --format json -o baseline.json`",
            path=path,
            field="results",
        )
    res = results[0]
    _check_result_schema(res, path)
    return res


def _is_fraction(name: str) -> bool:
    """The metric's values are fractions in [0, 1] (a baseline outside that is corrupt);
    a name sc-eval does not know is checked only for being a number."""
    try:
        return metric_info(name).unit == FRACTION
    except UsageError:
        return False


def _is_value(v: object, name: str = "") -> bool:
    """A metric value as results store it: a finite number (in [0, 1] for fractions),
    null (undefined) or "inf"/"-inf" (an infinite NLL)."""
    if v is None or v in ("inf", "-inf", "nan"):
        return not _is_fraction(name) or v in (None, "nan")
    if not isinstance(v, int | float) or isinstance(v, bool):
        return False
    try:
        x = float(v)
    except OverflowError:
        return False
    if not math.isfinite(x):
        return False
    return 0.0 <= x <= 1.0 if _is_fraction(name) else True


def _check_result_schema(res: dict[str, Any], path: object) -> None:
    """Every field gate reads, with the type it must have: one place, one message each."""

    def bad(field: str, expected: str) -> InputError:
        return InputError(f"expected {expected}", path=path, field=f"results[0].{field}")

    for key in ("convention", "labels_sha256"):
        if not isinstance(res.get(key), str):
            raise bad(key, "a string")
    metrics = res.get("model_metrics")
    if not isinstance(metrics, dict) or not all(_is_value(v, k) for k, v in metrics.items()):
        raise bad("model_metrics", "an object of finite numbers (fractions in [0, 1])")
    scores = res.get("scores")
    if not isinstance(scores, dict):
        raise bad("scores", "an object of scores")
    for name, entry in scores.items():
        if not isinstance(entry, dict):
            raise bad(f"scores.{name}", "an object with 'metrics'")
        values = entry.get("metrics", {})
        if not isinstance(values, dict) or not all(_is_value(v, k) for k, v in values.items()):
            raise bad(f"scores.{name}.metrics", "an object of finite numbers (fractions in [0, 1])")
        params = entry.get("params") or {}
        if not isinstance(params, dict) or not all(
            _is_value(v) and v is not None and not isinstance(v, str) for v in params.values()
        ):
            raise bad(f"scores.{name}.params", "an object of finite numbers")


def baseline_params(
    res: dict[str, Any],
    scores: Sequence[str],
    given: dict[str, dict[str, float]],
    *,
    path: object,
    retune: Sequence[str] = (),
) -> dict[str, dict[str, float]]:
    """Score parameters for the candidate: the baseline's, so both use the same score.

    A parameter given on the command line that differs from the baseline's is a
    usage error (the comparison would not be like with like). Scores in
    ``retune`` keep only what was given: the candidate tunes them itself.
    """
    out = {k: dict(v) for k, v in given.items()}
    for name in scores:
        if name in retune:
            continue
        recorded = (res.get("scores", {}).get(name) or {}).get("params") or {}
        try:
            theirs = {str(k): float(v) for k, v in recorded.items()}
        except (TypeError, ValueError):
            raise InputError(
                f"score '{name}' has non-numeric params {recorded!r}",
                path=path,
                field=f"scores.{name}.params",
            ) from None
        if not theirs:
            continue
        for k, v in given.get(name, {}).items():
            if k in theirs and theirs[k] != v:
                raise UsageError(
                    f"{path}: the baseline's {name} used {k}={theirs[k]:g}, this run asks for "
                    f"{k}={v:g}; gate compares the same score, so drop the option or re-record "
                    "the baseline"
                )
        out[name] = theirs
    return out


def baseline_value(res: dict[str, Any], rule: Rule, *, path: object) -> float:
    """The baseline's value for ``rule`` (InputError if the baseline lacks it)."""
    if rule.score is None:
        value = res["model_metrics"].get(rule.metric)
    else:
        score = res["scores"].get(rule.score)
        if score is None:
            raise InputError(
                f"baseline has no score '{rule.score}' (has: {', '.join(res['scores'])})",
                path=path,
                field="scores",
            )
        value = score.get("metrics", {}).get(rule.metric)
        if rule.metric not in score.get("metrics", {}):
            raise InputError(
                f"baseline has no metric '{rule.metric}' for score '{rule.score}'; record the "
                "baseline with the same --metrics/--coverages/--risks",
                path=path,
                field=f"scores.{rule.score}.metrics",
            )
    if value is None:
        return math.nan
    try:
        return float(value)  # numbers, and "inf"/"-inf" for infinite values
    except (TypeError, ValueError):
        raise InputError(
            f"expected a number for {rule.name}, got {value!r}", path=path, field=rule.name
        ) from None


# --------------------------------------------------------------------------- verdicts
def _apart(amount: float, tolerance: float, digits: int) -> tuple[str, str]:
    """The regression and the tolerance with the Δ column's decimals, or more when that
    would print them equal though they differ ("worse by 0.02 > tolerance 0.02"); a
    non-zero regression never prints as 0."""
    for d in range(digits, 17):
        a, t = f"{amount:.{d}f}", f"{tolerance:.{d}f}"
        if (a != t or amount == tolerance) and (float(a) != 0 or amount == 0):
            return a, t
    return repr(amount), repr(tolerance)


@dataclass(frozen=True)
class Verdict:
    """The outcome of one rule (values in fractions; see ``Rule.scale`` for display)."""

    rule: Rule
    baseline: float
    candidate: float
    low: float = math.nan
    high: float = math.nan
    p_value: float = math.nan
    alpha: float | None = None
    p_floor: float = 0.0  # the smallest p-value the bootstrap can give, 1 / (B + 1)

    @property
    def delta(self) -> float:
        if self.candidate == self.baseline:  # also equal infinities (inf - inf is NaN)
            return 0.0
        return self.candidate - self.baseline

    @property
    def regression(self) -> float:
        """How much worse the candidate is, in display units (negative = better)."""
        sign = -1.0 if self.rule.higher_is_better else 1.0
        return sign * self.delta * self.rule.scale

    @property
    def undefined(self) -> bool:
        return math.isnan(self.baseline) or math.isnan(self.candidate)

    @property
    def beyond_tolerance(self) -> bool:
        return self.regression > self.rule.tolerance + 1e-12

    @property
    def significant(self) -> bool | None:
        """None when no significance test was asked for."""
        if self.alpha is None or math.isnan(self.p_value):
            return None
        return self.p_value < self.alpha

    @property
    def passed(self) -> bool:
        if self.undefined:
            return math.isnan(self.baseline) and math.isnan(self.candidate)
        if not self.beyond_tolerance:
            return True
        return self.significant is False

    @property
    def reason(self) -> str:
        r = self.rule
        if self.undefined:
            if self.passed:
                return "undefined in both (n/a)"
            return "undefined in one of baseline/candidate"
        amount, tol = _apart(abs(self.regression), r.tolerance, 2 if r.scale == 100.0 else 4)
        amount += r.unit
        tol += r.unit
        p = num.p_text(self.p_value, floor=self.p_floor)
        if self.regression == 0:
            return "unchanged"
        if self.regression < 0:
            return f"improved by {amount}"
        if not self.beyond_tolerance:
            return f"worse by {amount}, within tolerance {tol}"
        if self.significant is False:
            return f"worse by {amount} > {tol}, but not significant ({p} >= {self.alpha:g})"
        sig = f", {p} < {self.alpha:g}" if self.significant else ""
        return f"worse by {amount} > tolerance {tol}{sig}"


@dataclass(frozen=True)
class GateReport:
    """All verdicts of one gate run."""

    candidate: str
    baseline: str
    baseline_kind: str
    convention: str
    verdicts: tuple[Verdict, ...]
    #: ``--update-baseline``: the candidate was accepted whatever the verdicts
    updated_baseline: bool = False
    #: How the candidate was evaluated to match the baseline (tuning split, parameters).
    notes: tuple[str, ...] = ()
    #: The candidate's full evaluation (what ``--update-baseline`` writes as the new baseline).
    evaluation: Evaluation | None = field(default=None, repr=False, compare=False)

    @property
    def passed(self) -> bool:
        """Every rule passed (whatever ``updated_baseline`` says; see :attr:`outcome`)."""
        return all(v.passed for v in self.verdicts)

    @property
    def outcome(self) -> str:
        """``passed``, ``failed``, or ``accepted``: the baseline is rewritten with the
        candidate (``update_baseline``), which ends the run with exit 0 whatever the rules
        say."""
        if self.updated_baseline:
            return "accepted"
        return "passed" if self.passed else "failed"

    @property
    def exit_code(self) -> int:
        return 1 if self.outcome == "failed" else 0

    @property
    def status(self) -> str:
        """``PASSED``, ``FAILED``, or ``ACCEPTED (baseline updated)``: the table's title."""
        if self.updated_baseline:
            return "ACCEPTED (baseline updated)"
        return self.outcome.upper()

    def to_dict(self) -> dict[str, Any]:
        """The JSON document of ``sc-eval gate --format json``."""
        return gate_document(self)


def evaluated_metrics(rules: Sequence[Rule]) -> list[str]:
    """The selective metrics to evaluate for ``rules``: ``id:m`` needs ``m`` (its views
    are added from it); ``ood:…`` metrics come with every set holding OOD samples."""
    names = [r.metric.removeprefix("id:") for r in rules if r.metric not in MODEL_METRICS]
    return [m for m in names if view_of(m) == "scod"]


def candidate_value(ev: Evaluation, rule: Rule) -> float:
    require_views(ev, rule.metric)
    if rule.score is None:
        return ev.model_metrics[rule.metric]
    if rule.score not in ev.scores:
        raise UsageError(f"score '{rule.score}' was not evaluated")
    return ev.scores[rule.score].metrics[rule.metric]


def check_rules(
    rules: Sequence[Rule],
    candidate: Evaluation,
    baseline_values: Sequence[float],
    *,
    bootstrap: BootstrapResult | None = None,
    alpha: float | None = None,
    confidence: float = 0.95,
) -> list[Verdict]:
    """Verdict of every rule.

    Parameters
    ----------
    rules : sequence of Rule
    candidate : Evaluation
    baseline_values : sequence of float
        The baseline's value for each rule (fractions).
    bootstrap : sc_eval.stats.BootstrapResult, optional
        Paired replicates with model 0 = baseline, model 1 = candidate.
    alpha : float, optional
        Significance level of the one-sided test (only with ``bootstrap``).
    """
    out = []
    for rule, base in zip(rules, baseline_values, strict=True):
        cand = candidate_value(candidate, rule)
        low = high = p = math.nan
        floor = 0.0
        if bootstrap is not None:
            score = rule.score or bootstrap.scores[0]
            deltas = bootstrap.replicates(1, score, rule.metric) - bootstrap.replicates(
                0, score, rule.metric
            )
            d = deltas[np.isfinite(deltas)]
            if d.size:
                q = (1 - confidence) / 2
                low, high = (float(x) for x in np.quantile(d, [q, 1 - q]))
                sign = -1.0 if rule.higher_is_better else 1.0
                regress = sign * d * rule.scale
                p = (int(np.count_nonzero(regress <= rule.tolerance)) + 1) / (d.size + 1)
                floor = 1 / (d.size + 1)
        out.append(
            Verdict(rule, base, cand, low, high, p, alpha if bootstrap is not None else None, floor)
        )
    return out


# --------------------------------------------------------------------------- the gate
def is_json_baseline(path: str | os.PathLike[str]) -> bool:
    """Whether the baseline file at ``path`` is a JSON result (else predictions or a
    checkpoint; see :func:`sc_eval.files.is_json`)."""
    return is_json(path, "baseline file")


Source = Predictions | str | os.PathLike[str]
"""A predictions object, or a file (predictions, or a checkpoint run with ``checkpoint``)."""


def run_gate(
    candidate: Source,
    baseline: Source | dict[str, Any],
    *,
    metrics: Sequence[str] = (),
    scores: Sequence[str] = (),
    tolerance: str | None = None,
    alpha: float | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    convention: str = "mean",
    params: dict[str, dict[str, float]] | None = None,
    chunk_size: int | None = None,
    nan_policy: str = "refuse",
    ood_cost: float = 1.0,
    update_baseline: bool = False,
    keys: KeyOptions | None = None,
    checkpoint: CheckpointOptions | None = None,
) -> GateReport:
    """Gate a candidate against a baseline: the verdict of every rule (``sc-eval gate``).

    Parameters
    ----------
    candidate : Predictions, or a path
        The candidate's predictions (a path is read with ``keys``, a checkpoint run
        with ``checkpoint``).
    baseline : Predictions, dict, or a path
        A JSON result of ``sc-eval score --format json`` (a path to one, told apart by
        :func:`is_json_baseline`, or its first result as :func:`load_baseline_json`
        returns it), or the old model's predictions on the same samples.
    metrics, scores, tolerance
        The rules, as in :func:`parse_rules` (default: AURC of ``msp`` and accuracy,
        tolerance 0).
    alpha : float, optional
        With a predictions baseline: a rule fails only if the regression beyond its
        tolerance is significant at this level (one-sided paired bootstrap of
        ``n_boot`` resamples, seeded by ``seed``).
    confidence : float
        Coverage of the bootstrap intervals of Δ.
    convention, params, chunk_size, nan_policy, ood_cost
        As in :class:`~sc_eval.pipeline.EvalOptions`. A JSON baseline lends its
        recorded score parameters and tuning split to the candidate.
    update_baseline : bool
        Accept the candidate (a JSON baseline only): the report says ``accepted``
        and :attr:`GateReport.evaluation` is the new baseline to write.

    Returns
    -------
    GateReport

    Raises
    ------
    UsageError
        A bad ``alpha``; ``alpha`` with a JSON baseline or ``update_baseline`` with a
        predictions baseline; a baseline of another convention, OOD cost or test set.
    InputError
        A malformed baseline or predictions.
    """
    if alpha is not None and not 0 < alpha < 1:
        raise UsageError(f"--alpha must be in (0, 1), got {alpha}")
    keys = keys or KeyOptions()
    rules = parse_rules(metrics, scores, tolerance)
    base_path = baseline if isinstance(baseline, str | os.PathLike) else None
    if base_path is not None and is_json_baseline(base_path):
        baseline = load_baseline_json(base_path)
    is_json = isinstance(baseline, dict)
    if alpha is not None and is_json:
        raise UsageError(
            "--alpha needs a predictions baseline (the same samples through the old model); "
            "a JSON baseline holds only the numbers"
        )
    if update_baseline and not is_json:
        raise UsageError("--update-baseline rewrites a JSON baseline; this baseline is predictions")
    base_name = str(base_path) if base_path is not None else _source_name(baseline)
    cand = _load(candidate, keys, checkpoint)
    opts = EvalOptions(
        scores=(),
        params=params or {},
        metrics=tuple(dict.fromkeys([*DEFAULT_SELECTIVE, *evaluated_metrics(rules)])),
        convention=convention,
        chunk_size=chunk_size,
        nan_policy=nan_policy,
        ood_cost=ood_cost,
        seed=seed,
    )
    rule_scores = [r.score for r in rules if r.score]
    if isinstance(baseline, dict):
        extra = [  # the baseline's other scores, those the candidate's input can give
            s
            for s in baseline.get("scores", {})
            if s in SCORES and (cand.has_logits or not SCORES[s].needs_logits)
        ]
        names = tuple(dict.fromkeys([*rule_scores, *extra] or ["msp"]))
        ev, verdicts, notes = _against_result(cand, baseline, rules, opts, names, base_name)
        kind = "JSON result"
    else:
        names = tuple(dict.fromkeys(rule_scores or ["msp"]))
        base = _load(baseline, keys, checkpoint)
        opts = dataclasses.replace(opts, scores=names)
        ev, verdicts = _against_predictions(
            cand, base, rules, opts, alpha=alpha, n_boot=n_boot, confidence=confidence
        )
        notes = []
        kind = "predictions"
    return GateReport(
        candidate=_source_name(candidate),
        baseline=base_name,
        baseline_kind=kind,
        convention=opts.convention,
        verdicts=tuple(verdicts),
        updated_baseline=update_baseline,
        notes=tuple(notes),
        evaluation=ev,
    )


def _source_name(source: object) -> str:
    return source.name if isinstance(source, Predictions) else str(source)


def _load(source: Source, keys: KeyOptions, checkpoint: CheckpointOptions | None) -> Predictions:
    if isinstance(source, Predictions):
        return source
    return load_source(source, keys=keys, checkpoint=checkpoint)


def _against_result(
    cand: Predictions,
    res: dict[str, Any],
    rules: Sequence[Rule],
    opts: EvalOptions,
    names: tuple[str, ...],
    path: str,
) -> tuple[Evaluation, list[Verdict], list[str]]:
    """Evaluate the candidate as the JSON baseline was (convention, OOD cost, tuning split,
    score parameters) on the same labels, and judge each rule against the recorded value."""
    tune_split, tune_seed, retune, notes = baseline_tuning(res, names, path=path)
    opts = dataclasses.replace(
        opts,
        scores=names,
        params=baseline_params(
            res, names, {k: dict(v) for k, v in opts.params.items()}, path=path, retune=retune
        ),
        tune_split=tune_split,
        seed=opts.seed if tune_seed is None else tune_seed,
    )
    if res["convention"] != opts.convention:
        raise UsageError(
            f"{path}: baseline was computed with AURC convention "
            f"'{res['convention']}', this run uses '{opts.convention}'; pass "
            f"--aurc-convention {res['convention']} or re-record the baseline"
        )
    base_cost = (res.get("ood") or {}).get("cost", 1.0)
    if cand.has_ood and base_cost != opts.ood_cost:
        raise UsageError(
            f"{path}: baseline was computed with --ood-cost {base_cost:g}, this run "
            f"uses {opts.ood_cost:g}; pass --ood-cost {base_cost:g} or re-record the baseline"
        )
    ev, scored = evaluate_source(cand, opts)
    if res["labels_sha256"] != ev.labels_sha256:
        full = (res.get("tuning") or {}).get("labels_sha256_all")
        if full == cand.labels_sha256:
            raise UsageError(
                f"{path}: the candidate has the baseline's test set, but its tuning split "
                "left other samples for the evaluation (rows dropped by --nan-policy?)"
            )
        dropped = cand.n - scored.n
        raise UsageError(
            f"{path}: baseline was computed on other labels (labels_sha256 "
            f"{str(res['labels_sha256'])[:12]}… vs {ev.labels_sha256[:12]}…): "
            "not the same test set"
            + (
                f" ({dropped} candidate rows were dropped by --nan-policy drop; rank-last "
                "keeps every row)"
                if dropped
                else ""
            )
        )
    values = [baseline_value(res, r, path=path) for r in rules]
    return ev, check_rules(rules, ev, values), notes


def _against_predictions(
    cand: Predictions,
    base: Predictions,
    rules: Sequence[Rule],
    opts: EvalOptions,
    *,
    alpha: float | None,
    n_boot: int,
    confidence: float,
) -> tuple[Evaluation, list[Verdict]]:
    """Evaluate both on the same (aligned) samples; with ``alpha`` a paired bootstrap
    tests each regression."""
    (base, cand), _ = align_predictions([base, cand])
    (base_ev, base_s), (cand_ev, cand_s) = drop_shared_rows(
        [base, cand], [evaluate_source(base, opts), evaluate_source(cand, opts)], opts
    )
    values = [candidate_value(base_ev, r) for r in rules]
    boot = (
        None
        if alpha is None
        else _paired_bootstrap(
            [(base, base_s), (cand, cand_s)], rules, opts, n_boot, cand_ev.ood is not None
        )
    )
    verdicts = check_rules(
        rules, cand_ev, values, bootstrap=boot, alpha=alpha, confidence=confidence
    )
    return cand_ev, verdicts


def _paired_bootstrap(
    models: Sequence[tuple[Predictions, ScoredSamples]],
    rules: Sequence[Rule],
    opts: EvalOptions,
    n_boot: int,
    has_ood: bool,
) -> BootstrapResult:
    """Paired resamples of baseline (model 0) and candidate (model 1); with OOD samples
    every view, ID and OOD samples resampled together."""
    assert opts.scores is not None
    kw: dict[str, Any] = {
        "metrics": [r.metric for r in rules],
        "scores": opts.scores,
        "convention": opts.convention,
        "n_boot": n_boot,
        "seed": opts.seed,
    }
    scored = [s for _, s in models]
    if not has_ood:
        return bootstrap_metrics(scored, **kw)
    oods = [p.ood[s.index] for p, s in models]
    return bootstrap_views(scored, oods, cost=opts.ood_cost, **kw)


def baseline_tuning(
    res: dict[str, Any], scores: Sequence[str], *, path: object
) -> tuple[float | None, int | None, tuple[str, ...], list[str]]:
    """How to evaluate the candidate like a tuned baseline.

    A baseline recorded with ``--tune``/``--tune-split`` was evaluated on the
    samples its seeded split left over: the candidate is split the same way
    (same fraction and seed, so the same rows when the test set is the same),
    and its tunable scores are tuned on its own tuning rows, as the baseline's
    were. A baseline tuned on a ``--val`` file leaves the candidate with the
    baseline's parameters (gate has no validation file for it), which the
    notes say.

    Returns ``(tune_split, seed, scores tuned afresh, notes)``.
    """
    tuning = res.get("tuning")
    if not isinstance(tuning, dict):
        return None, None, (), []
    tuned = tuple(
        s
        for s in scores
        if isinstance(res["scores"].get(s), dict) and res["scores"][s].get("tuned")
    )
    if tuning.get("split") == "random":
        fraction, seed = tuning.get("fraction"), tuning.get("seed")
        if (
            not isinstance(fraction, int | float)
            or not 0 < fraction < 1
            or not isinstance(seed, int)
        ):
            raise InputError(
                "a tuned baseline must record the split's fraction in (0, 1) and integer seed",
                path=path,
                field="results[0].tuning",
            )
        notes = [
            f"the baseline was evaluated on the samples left by a random tuning split "
            f"(fraction {fraction:g}, seed {seed}); the candidate is split the same way"
            + (f" and tunes {', '.join(tuned)} on its own tuning rows" if tuned else "")
        ]
        return float(fraction), seed, tuned, notes
    if tuning.get("split") == "val" and tuned:
        shown = "; ".join(
            f"{s} "
            + ", ".join(f"{k}={v:g}" for k, v in (res["scores"][s].get("params") or {}).items())
            for s in tuned
        )
        return (
            None,
            None,
            (),
            [
                f"the baseline tuned {', '.join(tuned)} on {tuning.get('val')}; the candidate is "
                f"scored with the baseline's parameters ({shown}), not tuned on its own data"
            ],
        )
    return None, None, (), []


def gate_document(report: GateReport) -> dict[str, Any]:
    """JSON form of the verdicts (fractions).

    ``status`` is the run's outcome (``passed``, ``failed``, or ``accepted`` with
    ``--update-baseline``, as the table's title says); ``passed`` whether every rule
    passed. Each rule's ``tolerance`` is in display units (``tolerance_unit``) and
    ``tolerance_fraction`` in the units of the values.
    """

    from sc_eval.report import json_safe

    return json_safe(
        {
            "schema": "sc-eval/gate",
            "version": 1,
            "status": report.outcome,
            "passed": report.passed,
            "updated_baseline": report.updated_baseline,
            "candidate": report.candidate,
            "baseline": report.baseline,
            "baseline_kind": report.baseline_kind,
            "convention": report.convention,
            "notes": list(report.notes),
            "rules": [
                {
                    "metric": v.rule.metric,
                    "score": v.rule.score,
                    "tolerance": v.rule.tolerance,
                    "tolerance_unit": "percentage points" if v.rule.scale == 100.0 else "raw",
                    "tolerance_fraction": v.rule.tolerance / v.rule.scale,
                    "higher_is_better": v.rule.higher_is_better,
                    "baseline": v.baseline,
                    "candidate": v.candidate,
                    "delta": None if v.undefined else v.delta,
                    "interval": [v.low, v.high],
                    "p_value": v.p_value,
                    "alpha": v.alpha,
                    "passed": v.passed,
                    "reason": v.reason,
                }
                for v in report.verdicts
            ],
        }
    )
