"""Hypothesis strategies for confidence/error vectors and logits.

Large inputs are generated from a drawn seed (fast to draw, still shrinkable
in ``n``); small inputs are drawn value by value so that hypothesis can
shrink them to minimal counter-examples.
"""

from __future__ import annotations

import numpy as np
from hypothesis import strategies as st

# A few values that make ties likely; includes -0.0 == 0.0 and extreme magnitudes.
TIE_POOL = [0.0, -0.0, 0.5, 1.0, 1.0 + 2**-52, 2.0, -3.0, 1e300, -1e300, 5e-324]


@st.composite
def small_conf_err(draw, *, min_n: int = 1, max_n: int = 12, ties: bool = True):
    """Value-by-value confidence and error vectors (shrinks well)."""
    n = draw(st.integers(min_n, max_n))
    if ties:
        values = st.one_of(st.sampled_from(TIE_POOL), st.integers(-3, 3).map(float))
    else:
        values = st.floats(-1e6, 1e6, allow_nan=False)
    conf = draw(st.lists(values, min_size=n, max_size=n, unique=not ties))
    err = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    return np.array(conf, dtype=np.float64), np.array(err, dtype=bool)


@st.composite
def seeded_conf_err(draw, *, min_n: int = 1, max_n: int = 10_000, ties: bool | None = None):
    """Seed-generated vectors, ``n`` anywhere in ``[min_n, max_n]``.

    ``ties``: True forces few distinct confidences, False all distinct, None either.
    """
    n = draw(st.one_of(st.integers(min_n, min(max_n, 50)), st.integers(min_n, max_n)))
    seed = draw(st.integers(0, 2**32 - 1))
    with_ties = draw(st.booleans()) if ties is None else ties
    err_rate = draw(st.sampled_from([0.0, 0.02, 0.2, 0.5, 0.9, 1.0]))
    rng = np.random.default_rng(seed)
    if with_ties:
        levels = draw(st.sampled_from([1, 2, 3, 10, max(1, n // 3)]))
        conf = rng.integers(0, levels, n).astype(np.float64) / levels
    else:
        conf = rng.permutation(n).astype(np.float64) + rng.uniform(0, 0.5, n)
    err = rng.random(n) < err_rate
    return conf, err


def conf_err(*, max_n: int = 10_000, ties: bool | None = None, min_n: int = 1):
    """Either kind of confidence/error vectors."""
    small = small_conf_err(min_n=min_n, max_n=min(12, max_n), ties=ties is not False)
    return st.one_of(small, seeded_conf_err(min_n=min_n, max_n=max_n, ties=ties))


@st.composite
def logits_labels(draw, *, max_n: int = 200, max_c: int = 10, scale: float | None = None):
    """Seed-generated float64 logits ``[n, C]`` and labels."""
    n = draw(st.integers(1, max_n))
    c = draw(st.integers(2, max_c))
    seed = draw(st.integers(0, 2**32 - 1))
    s = scale if scale is not None else draw(st.sampled_from([0.1, 1.0, 5.0, 20.0, 300.0]))
    rng = np.random.default_rng(seed)
    z = rng.normal(size=(n, c)) * s
    labels = rng.integers(0, c, n)
    return z, labels
