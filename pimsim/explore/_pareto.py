"""Pareto fronts: the designs no other feasible design beats in every objective.

With every objective turned into a minimisation (``max`` objectives negated), design a
*dominates* design b when a is no worse than b in every objective and better in at least one.
Identical designs do not dominate each other, so duplicates are all on the front. Only feasible
designs take part: status ``ok``, every constraint met, every objective measured (finite).
"""

from __future__ import annotations

import numpy as np

from pimsim.spec._metrics import (
    METRICS,
    Constraint,
    ObjectiveError,
    parse_constraint,
    parse_objectives,
)


def non_dominated(values: np.ndarray) -> np.ndarray:
    """Boolean mask of the rows of ``values`` (n x k, every column minimised) that no other row
    dominates. Rows with NaN are never on the front and dominate nothing.

    Rows are visited in lexicographic order, so a row can only be dominated by rows before it;
    each is compared (vectorised) with the front found so far only."""
    values = np.asarray(values, dtype=float)
    if values.ndim != 2:
        raise ValueError("values must be a 2-D array (designs x objectives)")
    n = len(values)
    mask = np.zeros(n, dtype=bool)
    valid = ~np.isnan(values).any(axis=1) if n else np.zeros(0, bool)
    idx = np.flatnonzero(valid)
    if not len(idx):
        return mask
    sub = values[idx]
    order = np.lexsort(sub.T[::-1])
    front: list[int] = []
    front_values = np.empty((0, values.shape[1]))
    for i in order:
        v = sub[i]
        if len(front):
            no_worse = (front_values <= v).all(axis=1)
            better = (front_values < v).any(axis=1)
            if (no_worse & better).any():
                continue
        front.append(i)
        front_values = np.vstack([front_values, v])
    mask[idx[front]] = True
    return mask


def _constraints(constraints) -> list[Constraint]:
    return [c if isinstance(c, Constraint) else parse_constraint(c) for c in constraints or ()]


def listing(names, limit: int = 10) -> str:
    """``"a, b, c"``, cut after ``limit`` names (``"..., and 7 more"``); ``"none"`` if empty."""
    names = list(names)
    text = ", ".join(map(str, names[:limit])) or "none"
    return text + (f", and {len(names) - limit} more" if len(names) > limit else "")


def _need(frame, column: str, what: str) -> None:
    if column not in frame:
        have = [c for c in frame.columns if c in METRICS]
        raise ObjectiveError(
            f"{what} {column!r}: the results have no such column (metrics: {listing(have)})"
        )


def feasible(frame, constraints=()):
    """Boolean Series: status ``ok`` (when the frame has a status) and every constraint met
    (a missing value fails)."""
    import pandas as pd

    ok = pd.Series(True, index=frame.index)
    if "status" in frame:
        ok &= frame["status"] == "ok"
    for c in _constraints(constraints):
        _need(frame, c.metric, "constraint on")
        values = pd.to_numeric(frame[c.metric], errors="coerce")
        ok &= c.holds(values).fillna(False).astype(bool)
    return ok


def objective_matrix(frame, objectives) -> np.ndarray:
    """The objective columns as an n x k float array, negated where maximised."""
    import pandas as pd

    cols = []
    for o in objectives:
        _need(frame, o.metric, "objective")
        cols.append(pd.to_numeric(frame[o.metric], errors="coerce").to_numpy(float) * o.sign)
    return np.column_stack(cols) if cols else np.empty((len(frame), 0))


def pareto(frame, objectives, constraints=()):
    """The non-dominated feasible rows of ``frame`` for ``objectives`` (``"energy_pj:min,
    accuracy:max"``, a list, or :class:`~pimsim.spec._metrics.Objective` objects), sorted by the
    first objective in its preferred order (ties by the next ones); the index is kept."""
    objectives = as_objectives(objectives)
    ok = feasible(frame, constraints).to_numpy(dtype=bool, copy=True)
    values = objective_matrix(frame, objectives)
    ok &= np.isfinite(values).all(axis=1)
    keep = np.zeros(len(frame), dtype=bool)
    keep[np.flatnonzero(ok)] = non_dominated(values[ok])
    front = frame[keep].copy()
    if len(front):
        order = np.lexsort(values[keep].T[::-1])
        front = front.iloc[order]
    return front


def as_objectives(objectives) -> tuple:
    """Objectives in any accepted form (a ``"m:min,m:max"`` string, a list of such strings or
    of ``{metric: direction}`` mappings, or :class:`~pimsim.spec._metrics.Objective` objects)."""
    from pimsim.spec._metrics import Objective

    if isinstance(objectives, (list, tuple)):
        objectives = [str(o) if isinstance(o, Objective) else o for o in objectives]
    return parse_objectives(objectives)


def why_empty(frame, objectives, constraints=()) -> str:
    """Why the front of ``frame`` is empty, in one line: no designs, none feasible (status
    ``ok``), no design meeting every constraint (with how many meet each), or none with every
    objective measured. Meant for a front :func:`pareto` found empty."""
    import pandas as pd

    objectives = as_objectives(objectives)
    constraints = _constraints(constraints)
    total = len(frame)
    if not total:
        return "no designs to rank"
    ok = frame[frame["status"] == "ok"] if "status" in frame else frame
    if not len(ok):
        counts = frame["status"].value_counts()
        statuses = ", ".join(f"{n} {status}" for status, n in counts.items())
        return f"none of the {total} designs is feasible (status ok): {statuses}"
    meets = feasible(ok, constraints)
    if constraints and not meets.any():
        each = []
        for c in constraints:
            values = pd.to_numeric(ok[c.metric], errors="coerce")
            each.append(f"'{c}' by {int(c.holds(values).fillna(False).astype(bool).sum())}")
        named = ", ".join(repr(str(c)) for c in constraints)
        line = (
            f"no design meets the constraint{'s' if len(constraints) > 1 else ''} {named}: "
            f"{total} designs checked, {len(ok)} feasible (status ok)"
        )
        if len(constraints) > 1:
            line += f"; each alone is met by: {', '.join(each)}"
        return line
    rows = ok[meets]
    unmeasured = [
        o.metric
        for o in objectives
        if not np.isfinite(pd.to_numeric(rows[o.metric], errors="coerce").to_numpy(float)).any()
    ]
    where = f" of the {len(rows)} that meet the constraints" if constraints else ""
    if unmeasured:
        return (
            f"no design{where} has {', '.join(unmeasured)} measured ({total} designs checked): "
            "these objectives need a sweep that measures them"
        )
    return f"no design{where} has every objective measured ({total} designs checked)"
