"""A named-task front end to the event kernel: tasks with a duration, an optional resource and
predecessors by name, simulated by :func:`pimsim.dataflow._kernel.run`. The training step of
:func:`pimsim.cost.training_cost` is built on it: which tasks wait for which, and which share a
resource, is all the model says; the times come out of the simulation."""

from __future__ import annotations

from dataclasses import dataclass

from pimsim.dataflow._kernel import PS_PER_NS, run, to_ps


@dataclass(frozen=True)
class TaskTimes:
    """Start and finish (ns) of every task, by name, and the makespan."""

    start_ns: dict
    finish_ns: dict
    resource: dict
    events: int

    @property
    def makespan_ns(self) -> float:
        return max(self.finish_ns.values(), default=0.0)

    def busy_ns(self) -> dict:
        """Busy time per resource (ns)."""
        out: dict = {}
        for name, res in self.resource.items():
            if res is not None:
                out[res] = out.get(res, 0.0) + self.finish_ns[name] - self.start_ns[name]
        return out


class TaskGraph:
    """Tasks added in an order where every predecessor comes first."""

    def __init__(self) -> None:
        self._index: dict[str, int] = {}
        self._names: list[str] = []
        self._duration: list[int] = []
        self._resource: list[str | None] = []
        self._preds: list[list[int]] = []

    def __contains__(self, name: str) -> bool:
        return name in self._index

    def add(self, name: str, duration_ns: float, resource: str | None = None, after=()) -> str:
        """Add task ``name`` taking ``duration_ns`` on ``resource`` (None: a pure delay) once
        every task named in ``after`` has finished; returns ``name``."""
        if name in self._index:
            raise ValueError(f"task {name!r} added twice")
        preds = []
        for p in after:
            if p not in self._index:
                raise ValueError(f"task {name!r} waits for {p!r}, which is not (yet) a task")
            preds.append(self._index[p])
        self._index[name] = len(self._names)
        self._names.append(name)
        self._duration.append(to_ps(duration_ns))
        self._resource.append(resource)
        self._preds.append(preds)
        return name

    def simulate(self) -> TaskTimes:
        """Run the tasks; each resource serves one task at a time (see the kernel's order)."""
        ids: dict[str, int] = {}
        res = [ids.setdefault(r, len(ids)) if r is not None else -1 for r in self._resource]
        trace = run(self._duration, res, self._preds, len(ids))
        return TaskTimes(
            start_ns={n: trace.start[i] / PS_PER_NS for i, n in enumerate(self._names)},
            finish_ns={n: trace.finish[i] / PS_PER_NS for i, n in enumerate(self._names)},
            resource=dict(zip(self._names, self._resource, strict=True)),
            events=trace.events,
        )
