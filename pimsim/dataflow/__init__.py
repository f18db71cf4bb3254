"""Event-driven dataflow model: latency, throughput, utilisation and a timeline of a mapped
network on the chip's arrays, buffers, interconnect and digital units (see ``_model`` for what
is and is not modelled and ``_kernel`` for the event kernel and its time unit)."""

from pimsim.dataflow._kernel import PS_PER_NS, Trace, max_plus_chain, run, to_ps
from pimsim.dataflow._model import (
    CLASSES,
    DEFAULT_GRANULARITY,
    DataflowResult,
    TimelineTrace,
    simulate,
)
from pimsim.dataflow._plot import plot_timeline
from pimsim.dataflow._resources import ChipTiming, Port

__all__ = [
    "CLASSES",
    "DEFAULT_GRANULARITY",
    "PS_PER_NS",
    "ChipTiming",
    "DataflowResult",
    "Port",
    "TimelineTrace",
    "Trace",
    "max_plus_chain",
    "plot_timeline",
    "run",
    "simulate",
    "to_ps",
]
