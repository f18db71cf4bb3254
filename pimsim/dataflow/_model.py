"""The mapped network as jobs on the chip's resources, and what their simulation says.

**Granularity.** ``row`` (default): a conv or pooling layer with a (C, H, W) output is H chunks
of one output row each, and so is an element-wise layer (activation, batch-norm, add, concat,
element-wise arithmetic) fed by such a layer; other layers are one chunk (attention's (heads, T,
T) scores are not image rows). Every chunk's transfer pays the network's hop clocks, so a
row-chunked layer whose consumer needs all its rows at once (a ViT's patch embedding before its
flatten) can finish a few clocks later than in ``layer`` granularity. ``layer``: every layer is one chunk (stage-level pipelining,
much faster to simulate; the default for sweeps). A consumer chunk starts once the producer
chunks it needs have left: a kh x kw conv or pool with stride s and padding p needs input rows
``r s - p .. r s - p + (kh - 1) dilation``; element-wise layers (activation, batch-norm, add,
concat) need the same rows of every input; linear layers, flatten and global pooling need all of
them.

**A mapped layer's chunk** passes, in order: the global buffer (read) and the network into its
tile, when the chip has a global buffer; the tile's input buffer (its im2col input bits); its
copy's arrays (output positions x input cycles x row groups x step time, the step set by the
array read or the ADCs' serialised conversions); the tile's local interconnect (input and output
bits); the tile's output buffer (partial sums or activations, :func:`pimsim.mapping.
layer_traffic`); the network towards its consumers (activation bits, plus one clock per hop);
the global buffer (write). Each stage is one job on one unit-capacity resource, so layers that
share a tile share its buffers and every transfer contends for the network. Copies of a layer
split its chunks round-robin; a copy spanning several tiles uses their buffers in parallel.
**A digital layer's chunk** is one job on the chip's units of its class (activation, pooling,
digital) for its share of the layer's operations.

**Buffers** have a bandwidth (width x count x rate) and a capacity: a layer's output buffer
(its share of the tile's, split between the layers on that tile) holds ``cap`` chunks, so chunk
``j`` cannot start computing before chunk ``j - cap`` has left it: a full buffer stalls the
producer. Input buffers are assumed to hold one receptive field.

**Not modelled:** PE-level buffers and adder trees (pipelined with the array steps, one result
per step), wire delay beyond one clock per hop, packet routing and arbitration beyond first-come
first-served per resource, DRAM and off-chip I/O, weight loading.

**Samples.** Single-input latency, the per-layer times and the critical path come from a run of
one input. Throughput comes from a second run in which ``samples`` inputs are streamed back to
back (all available at time 0; on each resource jobs are served in order of readiness, ties by
sample, layer, chunk); on a chip that is not pipelined a sample starts when the previous one
has finished. Steady-state throughput is 1 / the mean spacing of the samples' finish times,
and never more than 1 / the busiest resource's time per input.
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field

from pimsim.dataflow._kernel import PS_PER_NS, run, run_static, to_ps
from pimsim.dataflow._resources import ChipTiming, Port

#: Kernels that turn the job graph into start and finish times: ``static`` (default, one pass
#: in the fixed service order) and ``heap`` (the event queue, kept as the reference the tests
#: compare ``static`` with, to the picosecond).
KERNELS = {"static": run_static, "heap": run}

CLASSES = ("compute", "adc", "buffer", "interconnect", "digital")


@dataclass
class _Jobs:
    duration: list[int] = field(default_factory=list)
    resource: list[int] = field(default_factory=list)
    preds: list[list[int]] = field(default_factory=list)
    layer: list[int] = field(default_factory=list)
    cls: list[str] = field(default_factory=list)
    stage: list[str] = field(default_factory=list)
    sample: list[int] = field(default_factory=list)

    def add(self, duration, resource, preds, layer, cls, stage, sample) -> int:
        self.duration.append(duration)
        self.resource.append(resource)
        self.preds.append(preds)
        self.layer.append(layer)
        self.cls.append(cls)
        self.stage.append(stage)
        self.sample.append(sample)
        return len(self.duration) - 1


class _Resources:
    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.cls: list[str] = []

    def get(self, name: str, cls: str) -> int:
        if name not in self.index:
            self.index[name] = len(self.cls)
            self.cls.append(cls)
        return self.index[name]

    @property
    def names(self) -> list[str]:
        return list(self.index)


#: Layers whose (C, H, W) output is a feature map produced row by row.
ROW_KINDS = ("conv", "pool")
#: Element-wise layers that follow their inputs' rows when an input is a row-by-row feature map.
ROW_FOLLOWERS = ("act", "bn", "add", "concat", "eltwise")


def _chunks(layer, granularity: str, chunked_inputs: bool) -> int:
    """Chunks of ``layer``: its output rows for a conv/pool feature map, and for element-wise
    layers on one; one otherwise (attention's (heads, T, T) scores are not image rows: a row of
    Q K^T needs every row of K)."""
    if granularity != "row" or len(layer.output_shape) != 3:
        return 1
    if layer.kind in ROW_KINDS or (layer.kind in ROW_FOLLOWERS and chunked_inputs):
        return layer.output_shape[1]
    return 1


def _needed(layer, k: int, r: int, n_prod: int, n_self: int) -> range:
    """Producer chunks (of input ``k`` of ``layer``) that chunk ``r`` of ``layer`` reads."""
    if n_prod == 1:
        return range(1)
    if n_self == 1:
        return range(n_prod)
    if layer.kind in ("conv", "pool") and layer.kernel is not None:
        kh, s, p = layer.kernel[0], layer.stride[0], layer.padding[0]
        d = layer.dilation[0] if layer.dilation else 1
        lo = max(0, r * s - p)
        hi = min(n_prod - 1, r * s - p + (kh - 1) * d)
        return range(lo, max(lo, hi) + 1) if lo < n_prod else range(n_prod - 1, n_prod)
    lo = r * n_prod // n_self
    hi = min(n_prod - 1, ((r + 1) * n_prod - 1) // n_self)
    return range(lo, hi + 1)


def _ports(timing: ChipTiming, kind: str, level: str, roles: tuple[str, ...]) -> list[Port]:
    return [
        p for p in timing.ports if p.kind == kind and p.level == level and p.role in roles
    ]


@dataclass(frozen=True)
class DataflowResult:
    """The simulation of one mapped network (all times in ns; see :mod:`pimsim.dataflow`).

    ``layers``: per layer ``latency_ns`` (the layer simulated alone with its inputs ready: its
    chunks pipelined through its stages), and from the one-input run of the whole network
    ``start_ns``, ``finish_ns`` and ``latency_breakdown_ns``
    (busy time per class: the busiest instance of each kind of resource the layer uses, e.g.
    the slowest copy's arrays, summed over kinds, e.g. input buffer + output buffer); the sum of
    the breakdown is the layer's stage time with its stages taken one after the other, the
    quantity DNN+NeuroSim reports per layer.
    ``utilization``: busy time / (resources x makespan) per resource class over the whole run.
    ``critical_path``: the chain of jobs that set sample 0's finish, merged per (layer, class).
    ``stage_ns``: busy time per sample of every resource (the pipeline's stages);
    ``bottleneck``: the busiest one."""

    latency_ns: float
    throughput_fps: float
    samples: int
    granularity: str
    events: int
    jobs: int
    layers: dict
    utilization: dict
    critical_path: list
    stage_ns: dict
    bottleneck: dict
    notes: tuple = ()
    trace: object = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict:
        """JSON-able summary (the ``dataflow`` section of a report)."""
        return {
            "latency_ns": self.latency_ns,
            "throughput_fps": self.throughput_fps,
            "samples": self.samples,
            "granularity": self.granularity,
            "events": self.events,
            "jobs": self.jobs,
            "bottleneck": self.bottleneck,
            "utilization": self.utilization,
            "critical_path": self.critical_path,
            "layers": self.layers,
            "notes": list(self.notes),
        }


@dataclass(frozen=True)
class TimelineTrace:
    """The raw trace behind a result, for timelines and tests: per job its layer name, class,
    stage, sample, resource name, start and finish (ps)."""

    layer: tuple
    cls: tuple
    stage: tuple
    sample: tuple
    resource: tuple
    start: tuple
    finish: tuple

    def rows(self):
        """One tuple per job: (layer, class, stage, sample, resource, start_ps, finish_ps)."""
        return list(
            zip(
                self.layer,
                self.cls,
                self.stage,
                self.sample,
                self.resource,
                self.start,
                self.finish,
                strict=True,
            )
        )


def _build(mapping, timing, granularity, samples, pipelined, data_movement, kernel=run_static):
    """Jobs of ``samples`` inputs, run through the kernel."""
    arch, workload = mapping.arch, mapping.workload
    per_tile = arch.tile.pes
    layers = list(workload.layers)
    index = {layer.name: i for i, layer in enumerate(layers)}
    n_chunks: list[int] = []
    for layer in layers:
        fed = any(n_chunks[index[s]] > 1 for s in layer.inputs if s in index)
        n_chunks.append(_chunks(layer, granularity, fed))
    res = _Resources()
    jobs = _Jobs()
    notes: list[str] = list(timing.notes)

    from pimsim.mapping import layer_traffic

    in_bufs = _ports(timing, "buffer", "tile", ("input", "both"))
    out_bufs = _ports(timing, "buffer", "tile", ("output", "both"))
    g_bufs = _ports(timing, "buffer", "chip", ("input", "output", "both"))
    local_ic = _ports(timing, "interconnect", "tile", ("local",))
    net = _ports(timing, "interconnect", "tile", ("network",)) + _ports(
        timing, "interconnect", "chip", ("network", "local")
    )
    if not data_movement:
        in_bufs = out_bufs = g_bufs = local_ic = net = []
    gbuf = g_bufs[0] if g_bufs else None
    network = net[0] if net else None
    tiles_of_layer: dict[str, int] = defaultdict(int)
    for name in mapping.layers:
        a, b = mapping.tile_span(name)
        for t in range(a, b + 1):
            tiles_of_layer[t] += 1

    def port_resource(port: Port, tile: int) -> int:
        if port.level == "chip" and (port.kind == "buffer" or port.topology in (None, "bus")):
            return res.get(port.name, port.kind)  # one chip-wide resource
        return res.get(f"{port.name}@t{tile // port.shared_by}", port.kind)

    def bits_ps(bits: float, port: Port, width: int = 1) -> int:
        return to_ps(bits / (port.bits_per_ns * width)) if bits else 0

    # per mapped layer: the tiles its PEs occupy
    spans = {name: range(mapping.tile_span(name)[0], mapping.tile_span(name)[1] + 1)
             for name in mapping.layers}
    per_tile_net = network is not None and not (
        network.level == "chip" and network.topology in (None, "bus")
    )

    last: list[list[list[int]]] = []  # [sample][layer][chunk] -> job id of the chunk's last stage
    drain: dict[tuple[int, int, int], int] = {}
    previous_sink: list[int] = []
    for b in range(samples):
        last_b: list[list[int]] = []
        sources: list[int] = []
        for i, layer in enumerate(layers):
            n = n_chunks[i]
            m = mapping.layers.get(layer.name)
            chunk_last = []
            for r in range(n):
                deps: list[int] = []
                for k, src in enumerate(layer.inputs):
                    if src not in index:
                        continue
                    p = index[src]
                    deps.extend(last_b[p][c] for c in _needed(layer, k, r, n_chunks[p], n))
                if not deps and not pipelined and previous_sink:
                    deps = list(previous_sink)
                first_job = len(jobs.duration)
                if m is None:
                    cls = timing.digital_class.get(layer.name, "digital")
                    dur = to_ps(timing.digital_ns.get(layer.name, 0.0) / n)
                    rid = res.get(f"{cls}_units", "digital") if dur else -1
                    j = jobs.add(dur, rid, deps, i, "digital", cls, b)
                else:
                    traffic = layer_traffic(mapping, layer)
                    tiles = spans[layer.name]
                    nt = len(tiles)
                    # the copies work as one gang: each chunk's positions are shared by all
                    # copies, so a chunk takes its positions x step time / copies
                    comp = to_ps(timing.position_ns[layer.name] * m.output_positions
                                 / (n * m.copies))
                    arrays = res.get(f"arrays:{layer.name}", "compute")
                    in_elems = sum(math.prod(sh) for sh in layer.input_shapes)
                    bits_in = arch.decomposition.input_bits
                    consumers = list(workload.graph.successors(layer.name))
                    hops = (sum(mapping.hops(layer.name, c) for c in consumers) / len(consumers)
                            if consumers else 0.0)
                    chain = deps
                    if gbuf is not None:
                        j = jobs.add(bits_ps(in_elems * bits_in / n, gbuf),
                                     port_resource(gbuf, 0), chain, i, "buffer",
                                     "global_read", b)
                        chain = [j]
                        if network is not None:
                            hop = network.hops if network.hops is not None else 1.0
                            d = bits_ps(in_elems * bits_in / n, network)
                            d += to_ps(hop * timing.period_ns) if d else 0
                            j = jobs.add(d, port_resource(network, tiles[0]), chain, i,
                                         "interconnect", "receive", b)
                            chain = [j]

                    def per_tile(port, bits, stage, cls, pred):
                        out = []
                        for t in tiles:
                            out.append(jobs.add(bits_ps(bits / (n * nt), port),
                                                port_resource(port, t), pred, i, cls, stage, b))
                        return out

                    for port in in_bufs[:1]:
                        chain = per_tile(port, traffic.input_bits, "load", "buffer", chain)
                    cap_pred = []
                    if out_bufs and out_bufs[0].capacity_bits and n > 1:
                        sharing = max(tiles_of_layer[t] for t in tiles)
                        share = out_bufs[0].capacity_bits / sharing
                        cap = max(1, int(share // max(1.0, traffic.output_bits / (n * nt))))
                        if (b, i, r - cap) in drain:
                            cap_pred = [drain[(b, i, r - cap)]]
                    if timing.write_ns.get(layer.name) and r == 0:  # operand written first
                        chain = [jobs.add(to_ps(timing.write_ns[layer.name]), arrays, chain, i,
                                          "compute", "write", b)]
                    cls = "adc" if timing.adc_bound.get(layer.name) else "compute"
                    j = jobs.add(comp, arrays, chain + cap_pred, i, cls, "compute", b)
                    chain = [j]
                    for port in local_ic[:1]:
                        chain = per_tile(port, traffic.input_bits + traffic.output_bits, "local",
                                         "interconnect", chain)
                    for port in out_bufs[:1]:
                        chain = per_tile(port, traffic.output_bits, "store", "buffer", chain)
                    if network is not None:
                        hop = network.hops if network.hops is not None else hops
                        if per_tile_net:
                            sends = []
                            for t in tiles:
                                d = bits_ps(traffic.send_bits / (n * nt), network)
                                d += to_ps(hop * timing.period_ns) if d else 0
                                sends.append(jobs.add(d, port_resource(network, t), chain, i,
                                                      "interconnect", "send", b))
                            chain = sends
                        else:
                            d = bits_ps(traffic.send_bits / n, network)
                            d += to_ps(hop * timing.period_ns) if d else 0
                            chain = [jobs.add(d, port_resource(network, tiles[0]), chain, i,
                                              "interconnect", "send", b)]
                    if len(chain) > 1 or gbuf is not None:
                        d = bits_ps(traffic.send_bits / n, gbuf) if gbuf is not None else 0
                        rid = port_resource(gbuf, 0) if gbuf is not None else -1
                        chain = [jobs.add(d, rid, chain, i, "buffer" if gbuf else "delay",
                                          "global_write" if gbuf else "join", b)]
                    drain[(b, i, r)] = chain[0]
                    j = chain[0]
                if not deps:
                    sources.append(first_job)
                chunk_last.append(j)
            last_b.append(chunk_last)
        last.append(last_b)
        sinks = [last_b[i][-1] for i, layer in enumerate(layers)
                 if not list(workload.graph.successors(layer.name))]
        previous_sink = sinks or [last_b[-1][-1]]
    streams = [b * len(layers) + i for b, i in zip(jobs.sample, jobs.layer, strict=True)]
    trace = kernel(jobs.duration, jobs.resource, jobs.preds, len(res.cls), streams)
    return layers, jobs, res, trace, last, notes


def simulate(
    mapping,
    timing: ChipTiming,
    *,
    granularity: str = "row",
    samples: int = 2,
    pipelined: bool | None = None,
    data_movement: bool = True,
    kernel: str = "static",
) -> DataflowResult:
    """Simulate ``samples`` inputs of ``mapping.workload`` on the chip described by ``timing``.

    ``pipelined`` defaults to the spec's ``chip.pipelined``; ``data_movement=False`` makes
    buffers and interconnect free (only arrays and digital units take time), the "unlimited
    resources" case of the closed forms. ``kernel``: a name in :data:`KERNELS` (both give the
    same trace).
    """
    if kernel not in KERNELS:
        raise ValueError(f"kernel must be one of {', '.join(KERNELS)}, not {kernel!r}")
    run_jobs = KERNELS[kernel]
    if granularity not in ("row", "layer"):
        raise ValueError(f"granularity must be 'row' or 'layer', not {granularity!r}")
    if samples < 1:
        raise ValueError("samples must be >= 1")
    if pipelined is None:
        pipelined = mapping.arch.chip.pipelined
    if not pipelined:
        granularity = "layer"
    single = _build(mapping, timing, granularity, 1, pipelined, data_movement, run_jobs)
    stream = (
        _build(mapping, timing, granularity, samples, pipelined, data_movement, run_jobs)
        if samples > 1
        else single
    )
    return _summarise(single, stream, samples, granularity, run_jobs)


def _summarise(single, stream, samples, granularity, kernel=run_static):
    """Latency, layers, stages and critical path from the one-input run (no other input
    interferes); throughput, utilisation and the trace from the streamed run."""
    layers, jobs, res, trace, last, notes = single
    n = len(jobs.duration)
    latency_ps = max(trace.finish[j] for lb in last[0] for j in lb)
    names = res.names
    busy0: dict[int, int] = defaultdict(int)
    per_layer: dict[int, dict] = {}
    for j in range(n):
        r = jobs.resource[j]
        if r >= 0:
            busy0[r] += jobs.duration[j]
        rec = per_layer.setdefault(
            jobs.layer[j],
            {"start": trace.start[j], "finish": trace.finish[j], "busy": defaultdict(int)},
        )
        rec["start"] = min(rec["start"], trace.start[j])
        rec["finish"] = max(rec["finish"], trace.finish[j])
        rec["busy"][(jobs.cls[j], r)] += jobs.duration[j]
    # each layer alone, its inputs ready at time 0: its own latency (stages overlapped across
    # chunks), the event model's counterpart of an analytical per-layer latency
    members: dict[int, list[int]] = defaultdict(list)
    for j in range(n):
        members[jobs.layer[j]].append(j)
    isolated = {}
    for i, js in members.items():
        local = {j: k for k, j in enumerate(js)}
        if len({jobs.resource[j] for j in js}) == 1 and not any(
            p in local for j in js for p in jobs.preds[j]
        ):
            # independent chunks on one resource (a digital layer): served one after another
            isolated[i] = sum(jobs.duration[j] for j in js)
            continue
        sub = kernel(
            [jobs.duration[j] for j in js],
            [jobs.resource[j] for j in js],
            [[local[p] for p in jobs.preds[j] if p in local] for j in js],
            len(res.cls),
        )
        isolated[i] = max(sub.finish, default=0)
    layer_out = {}
    for i, layer in enumerate(layers):
        rec = per_layer[i]
        # per class: resources of one kind (the copies of a layer's arrays, the same buffer in
        # several tiles) work in parallel (max); different kinds are passed in turn (sum)
        kinds: dict[tuple[str, str], int] = defaultdict(int)
        for (c, r), v in rec["busy"].items():
            kind = names[r].split("@")[0].split("#")[0] if r >= 0 else "delay"
            kinds[(c, kind)] = max(kinds[(c, kind)], v)
        breakdown = {}
        for (c, _), v in kinds.items():
            breakdown[c] = breakdown.get(c, 0.0) + v / PS_PER_NS
        breakdown = {c: breakdown[c] for c in CLASSES if breakdown.get(c)}
        layer_out[layer.name] = {
            "latency_ns": isolated[i] / PS_PER_NS,
            "start_ns": rec["start"] / PS_PER_NS,
            "finish_ns": rec["finish"] / PS_PER_NS,
            "latency_breakdown_ns": breakdown,
        }
    _, s_jobs, s_res, s_trace, s_last, _ = stream
    sample_finish = [max(s_trace.finish[j] for lb in s_last[b] for j in lb)
                     for b in range(samples)]
    if samples > 1:
        period = (sample_finish[-1] - sample_finish[0]) / (samples - 1)
    else:
        period = max(busy0.values(), default=latency_ps)
    period = max(period, max(busy0.values(), default=0))
    throughput = PS_PER_NS * 1e9 / period if period else math.inf
    makespan = max(sample_finish)
    count: dict[str, int] = defaultdict(int)
    total: dict[str, int] = defaultdict(int)
    for j, r in enumerate(s_jobs.resource):
        if r >= 0:
            total[s_res.cls[r]] += s_jobs.duration[j]
    for cls in s_res.cls:
        count[cls] += 1
    utilization = {c: total[c] / (count[c] * makespan) for c in count if makespan}
    stage_ns = {names[r]: v / PS_PER_NS for r, v in busy0.items()}
    if busy0:
        r = max(busy0, key=lambda k: (busy0[k], -k))
        bottleneck = {"resource": names[r], "class": res.cls[r], "busy_ns": busy0[r] / PS_PER_NS}
    else:
        bottleneck = {}
    # critical path of sample 0
    j = max((jj for lb in last[0] for jj in lb), key=lambda jj: (trace.finish[jj], -jj))
    path: list[dict] = []
    while j >= 0:
        key = (layers[jobs.layer[j]].name, jobs.cls[j])
        if not jobs.duration[j]:
            pass
        elif path and (path[-1]["layer"], path[-1]["class"]) == key:
            path[-1]["ns"] += jobs.duration[j] / PS_PER_NS
        else:
            path.append({"layer": key[0], "class": key[1], "ns": jobs.duration[j] / PS_PER_NS})
        j = trace.cause[j]
    path.reverse()
    s_names = s_res.names
    timeline = TimelineTrace(
        layer=tuple(layers[i].name for i in s_jobs.layer),
        cls=tuple(s_jobs.cls),
        stage=tuple(s_jobs.stage),
        sample=tuple(s_jobs.sample),
        resource=tuple(s_names[r] if r >= 0 else "" for r in s_jobs.resource),
        start=tuple(s_trace.start),
        finish=tuple(s_trace.finish),
    )
    return DataflowResult(
        latency_ns=latency_ps / PS_PER_NS,
        throughput_fps=throughput,
        samples=samples,
        granularity=granularity,
        events=trace.events + (s_trace.events if stream is not single else 0),
        jobs=n + (len(s_jobs.duration) if stream is not single else 0),
        layers=layer_out,
        utilization=utilization,
        critical_path=path,
        stage_ns=stage_ns,
        bottleneck=bottleneck,
        notes=tuple(notes),
        trace=timeline,
    )
