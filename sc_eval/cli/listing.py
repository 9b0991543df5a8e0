"""``sc-eval list``: the registries — scores, metrics, AURC conventions."""

from __future__ import annotations

from sc_eval.cli import app, handle_errors, stdout_console


@app.command("list")
@handle_errors
def list_registries() -> None:
    """List the confidence scores, metrics and AURC conventions sc-eval knows."""
    from dataclasses import replace

    from rich.table import Table

    from sc_eval.metrics import (
        CONVENTIONS,
        DETECTION_METRICS,
        MODEL_METRICS,
        SELECTIVE_METRICS,
        coverage_at_risk,
        get_metric,
        risk_at_coverage,
    )
    from sc_eval.scores import DEFAULT_SCORES, SCORES

    scores = Table(
        title="confidence scores (higher = accepted first; input 'either' = logits or "
        "probabilities)",
        title_justify="left",
    )
    for col in ("name", "input", "default", "tuned", "parameters", "definition"):
        scores.add_column(col)
    for s in SCORES.values():
        scores.add_row(
            s.name,
            "logits" if s.needs_logits else "either",
            "yes" if s.name in DEFAULT_SCORES else "",
            s.tuning or "",
            ", ".join(f"{k}={v:g}" for k, v in s.defaults.items()),
            s.description,
        )
    metrics = Table(title="metrics", title_justify="left")
    for col in ("name", "better", "unit", "definition"):
        metrics.add_column(col)
    family = {  # one row a parameterised family, its name showing the parameter
        "risk@cov=C": (risk_at_coverage(1.0), "selective risk at coverage C in (0, 1]"),
        "cov@risk=R": (coverage_at_risk(0.0), "largest coverage whose risk is <= R"),
    }
    infos = [(m.name, m.info) for m in MODEL_METRICS.values()]
    infos += [(m.name, m.info) for m in SELECTIVE_METRICS.values()]
    infos += [(k, replace(m.info, description=d)) for k, (m, d) in family.items()]
    rows = [
        (k, "higher" if i.higher_is_better else "lower", i.unit, i.description) for k, i in infos
    ]
    rows.append(  # test sets with OOD samples (label -1), docs/ood.md
        ("id:<metric>", "", "", "a selective metric on the ID samples of a set with OOD samples")
    )
    for k in DETECTION_METRICS:
        i = get_metric(f"ood:{k}").info
        rows.append((i.name, "higher" if i.higher_is_better else "lower", i.unit, i.description))
    for row in rows:
        metrics.add_row(*row)
    conventions = Table(title="AURC conventions (--aurc-convention)", title_justify="left")
    conventions.add_column("name")
    conventions.add_column("definition")
    for c in CONVENTIONS.values():
        conventions.add_row(c.name, c.formula)
    with stdout_console() as console:
        for t in (scores, metrics, conventions):
            _names_never_cut(t)
            console.print(t)


def _names_never_cut(table: object) -> None:
    """The name column (what a user types) keeps its full width; prose columns wrap."""
    columns = table.columns  # type: ignore[attr-defined]
    names = [str(cell) for cell in columns[0]._cells]
    columns[0].no_wrap = True
    columns[0].min_width = max((len(n) for n in names), default=0)
    for column in columns[1:]:
        column.overflow = "fold"
