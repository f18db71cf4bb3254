"""The mapped network as jobs on the chip's resources, and what their simulation says.

**Granularity.** ``row`` (:data:`DEFAULT_GRANULARITY`, for ``evaluate``, ``compare`` and sweeps
alike): a conv or pooling layer with a (C, H, W) output is H chunks of one output row each, and
so is an element-wise layer (activation, batch-norm, add, concat, element-wise arithmetic) fed
by such a layer; other layers are one chunk (attention's (heads, T, T) scores are not image
rows). Every chunk's transfer pays the network's hop clocks, so a row-chunked layer whose
consumer needs all its rows at once (a ViT's patch embedding before its flatten) can finish a
few clocks later than in ``layer`` granularity. ``layer``: every layer is one chunk
(stage-level pipelining only). A consumer chunk starts once the producer
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

import numpy as np

from pimsim.dataflow._kernel import PS_PER_NS, run, to_ps
from pimsim.dataflow._resources import ChipTiming, Port

#: Kernels that turn the job graph into start and finish times: ``static`` (default, one pass
#: in the fixed service order) and ``heap`` (the event queue, kept as the reference the tests
#: compare ``static`` with, to the picosecond).
KERNELS = ("static", "heap")

CLASSES = ("compute", "adc", "buffer", "interconnect", "digital")
DENSE = 1  # scale of the largest dense busy-time table (tests set 0 to check the sparse path)

#: The event model's granularity wherever none is given (``evaluate``, ``compare``, sweeps,
#: training cost). ``row``: a chip starts a layer's next row as soon as the rows it needs have
#: arrived, which is how pipelined PIM chips overlap layers (ISAAC's inter-layer pipeline,
#: NeuroSim's per-row pipeline); ``layer`` chunks make a layer wait for all of its producer's
#: output and so overstate the latency of a pipelined chip. Row costs a few milliseconds more
#: per design (``bench/dataflow_speed.py``), which no longer justifies two answers.
DEFAULT_GRANULARITY = "row"


class _Resources:
    """Resources by name, numbered in order of first use, with their class and kind (the name
    without its instance: ``tile.edram@t3`` is one ``tile.edram``)."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}
        self.cls: list[str] = []
        self.kinds: list[int] = []  # per resource, its kind's code in kind_codes
        self.kind_codes = _Codes()

    def get(self, name: str, cls: str) -> int:
        if name not in self.index:
            self.index[name] = len(self.cls)
            self.cls.append(cls)
            self.kinds.append(self.kind_codes(name.split("@")[0].split("#")[0]))
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


class TimelineTrace:
    """The raw trace behind a result, for timelines and tests: per job its layer name, class,
    stage, sample, resource name, start and finish (ps). Kept as arrays; the per-job tuples
    are made when first asked for."""

    def __init__(self, names, codes, samples, starts, finishes) -> None:
        self._names = names  # layer, class, stage and resource names
        self._codes = codes  # per job of one sample: indices into them (resource -1: none)
        self._samples = samples  # every sample runs the same jobs
        self._start = starts
        self._finish = finishes

    def _named(self, which: int) -> tuple:
        table = np.array(list(self._names[which]) + [""], dtype=object)
        return tuple(table[np.tile(self._codes[which], self._samples)].tolist())

    @property
    def layer(self) -> tuple:
        return self._named(0)

    @property
    def cls(self) -> tuple:
        return self._named(1)

    @property
    def stage(self) -> tuple:
        return self._named(2)

    @property
    def resource(self) -> tuple:
        return self._named(3)

    @property
    def sample(self) -> tuple:
        return tuple(np.repeat(np.arange(self._samples), len(self._codes[0])).tolist())

    @property
    def start(self) -> tuple:
        return tuple(self._start.tolist())

    @property
    def finish(self) -> tuple:
        return tuple(self._finish.tolist())

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


class _Codes:
    """Names as small integers, numbered in order of first use."""

    def __init__(self) -> None:
        self.index: dict[str, int] = {}

    def __call__(self, name: str) -> int:
        return self.index.setdefault(name, len(self.index))

    @property
    def names(self) -> list[str]:
        return list(self.index)


@dataclass
class _Graph:
    """The jobs of one sample as arrays, one entry per job: duration (ps), resource (-1: none),
    layer index, class and stage (indices into ``cls_names`` and ``stage_names``); predecessor
    edges ``src -> dst`` and spans (jobs ``span_lo .. span_hi - 1``: the stage before); where
    the layers (contiguous) and the chunks' last jobs are. A run of ``samples`` inputs repeats
    these jobs once per sample (sample ``b``'s job ``j`` is ``b * jobs + j``), with ``links``
    (edges from each sample's sinks to the next one's sources, without pipelining)."""

    duration: np.ndarray
    resource: np.ndarray
    layer: np.ndarray
    cls: np.ndarray
    stage: np.ndarray
    dst: np.ndarray
    src: np.ndarray
    span_lo: np.ndarray
    span_hi: np.ndarray
    layer_start: np.ndarray
    outputs: np.ndarray
    cls_names: list
    stage_names: list
    samples: int = 1
    links: tuple = ()

    @property
    def jobs(self) -> int:
        return self.duration.size


def _needed_ranges(layer, k: int, n_prod: int, n_self: int) -> tuple[np.ndarray, np.ndarray]:
    """First and last producer chunk (of input ``k`` of ``layer``) that each chunk of ``layer``
    reads: a kh x kw conv or pool with stride s, padding p and dilation d reads rows
    ``r s - p .. r s - p + (kh - 1) d`` (clipped to the producer's); other layers read the
    producer chunks that cover the same fraction of the output; a one-chunk producer or
    consumer means all of them."""
    r = np.arange(n_self, dtype=np.int64)
    if n_prod == 1:
        return np.zeros(n_self, np.int64), np.zeros(n_self, np.int64)
    if n_self == 1:
        return np.zeros(1, np.int64), np.full(1, n_prod - 1, np.int64)
    if layer.kind in ("conv", "pool") and layer.kernel is not None:
        kh, s, p = layer.kernel[0], layer.stride[0], layer.padding[0]
        d = layer.dilation[0] if layer.dilation else 1
        lo = np.maximum(0, r * s - p)
        hi = np.minimum(n_prod - 1, r * s - p + (kh - 1) * d)
        inside = lo < n_prod
        return (np.where(inside, lo, n_prod - 1),
                np.where(inside, np.maximum(lo, hi), n_prod - 1))
    lo = r * n_prod // n_self
    hi = np.minimum(n_prod - 1, ((r + 1) * n_prod - 1) // n_self)
    return lo, hi


def _spans(lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For ranges ``lo[r] .. hi[r]``: the range index and the value of every member."""
    count = hi - lo + 1
    which = np.repeat(np.arange(lo.size, dtype=np.int64), count)
    first = np.cumsum(count) - count
    return which, np.arange(which.size, dtype=np.int64) - np.repeat(first - lo, count)


def _build(mapping, timing, granularity, samples, pipelined, data_movement):
    """The jobs of ``samples`` inputs as a :class:`_Graph`, their resources and notes.

    Every chunk of a mapped layer passes the same stages (:mod:`pimsim.dataflow._model`), so a
    layer is a template of job groups (one job, or one per tile) repeated for its chunks; the
    jobs are numbered sample by sample, layer by layer, chunk by chunk, stage by stage."""
    arch, workload = mapping.arch, mapping.workload
    layers = list(workload.layers)
    index = {layer.name: i for i, layer in enumerate(layers)}
    n_chunks: list[int] = []
    for layer in layers:
        fed = any(n_chunks[index[s]] > 1 for s in layer.inputs if s in index)
        n_chunks.append(_chunks(layer, granularity, fed))
    res = _Resources()
    cls_code, stage_code = _Codes(), _Codes()
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

    def bits_ps(bits: float, port: Port) -> int:
        return to_ps(bits / port.bits_per_ns) if bits else 0

    def transfer_ps(bits: float, hops: float) -> int:
        """A network transfer: its bits at the network's bandwidth, plus a clock per hop."""
        d = bits_ps(bits, network)
        return d + to_ps(hops * timing.period_ns) if d else 0

    per_tile_net = network is not None and not (
        network.level == "chip" and network.topology in (None, "bus")
    )

    # every layer's chunks repeat a template of jobs (chunk 0's may differ): the templates,
    # one row per job, its span (the stage before) relative to its chunk
    templates: dict[str, list[int]] = {k: [] for k in ("dur", "res", "cls", "stage", "lo", "hi")}
    plan: list[tuple] = []  # per layer: first job, chunks, layer, both templates' place
    total = [0]
    edges_dst: list[np.ndarray] = []
    edges_src: list[np.ndarray] = []
    outputs: list[np.ndarray] = []  # per layer: the last job of each chunk
    layer_start: list[int] = []
    sources: list[np.ndarray] = []  # first stage's jobs of chunks that wait for no other layer

    def add_template(groups) -> tuple[int, int, int]:
        """Append one chunk's groups (every job of a group waits for every job of the group
        before); returns the template's offset, length and first group's size."""
        off, pos, before = len(templates["dur"]), 0, (0, 0)
        for durations, resources, cls, stage in groups:
            k = len(durations)
            templates["dur"].extend(durations)
            templates["res"].extend(resources)
            templates["cls"].extend([cls_code(cls)] * k)
            templates["stage"].extend([stage_code(stage)] * k)
            templates["lo"].extend([before[0]] * k)
            templates["hi"].extend([before[1]] * k)
            before = (pos, pos + k)
            pos += k
        return off, pos, len(groups[0][0])

    def place(i, n, a_off, a_len, b_off, b_len, ext_c, ext_s, waits, s0):
        """Lay out layer ``i``'s ``n`` chunks (chunk 0 from template a, later ones from b), its
        edges from the producer chunks (into its first group) and its outputs."""
        base = total[0]
        plan.append((base, n, i, a_off, a_len, b_off, b_len))
        r = np.arange(n, dtype=np.int64)
        chunk_base = base + np.where(r == 0, 0, a_len + (r - 1) * b_len)
        last = chunk_base + np.where(r == 0, a_len, b_len) - 1
        total[0] = base + a_len + (n - 1) * b_len
        first = np.arange(s0, dtype=np.int64)
        edges_dst.append((chunk_base[ext_c][:, None] + first).ravel())
        edges_src.append(np.repeat(ext_s, s0))
        sources.append((chunk_base[~waits][:, None] + first).ravel())
        outputs.append(last)
        return chunk_base, last

    for i, layer in enumerate(layers):
        n = n_chunks[i]
        m = mapping.layers.get(layer.name)
        layer_start.append(total[0])
        # the producer chunks each chunk reads, as (chunk, producer job) pairs
        ext_chunk, ext_src = [], []
        for k, src in enumerate(layer.inputs):
            if src not in index:
                continue
            p = index[src]
            which, member = _spans(*_needed_ranges(layer, k, n_chunks[p], n))
            ext_chunk.append(which)
            ext_src.append(outputs[p][member])
        ext_c = np.concatenate(ext_chunk) if ext_chunk else np.zeros(0, np.int64)
        ext_s = np.concatenate(ext_src) if ext_src else np.zeros(0, np.int64)
        waits = np.zeros(n, bool)
        waits[ext_c] = True
        if m is None:
            cls = timing.digital_class.get(layer.name, "digital")
            dur = to_ps(timing.digital_ns.get(layer.name, 0.0) / n)
            rid = res.get(f"{cls}_units", "digital") if dur else -1
            off, length, s0 = add_template([([dur], [rid], "digital", cls)])
            place(i, n, off, length, off, length, ext_c, ext_s, waits, s0)
            continue
        traffic = layer_traffic(mapping, layer)
        tiles = range(mapping.tile_span(layer.name)[0], mapping.tile_span(layer.name)[1] + 1)
        nt = len(tiles)
        # the copies work as one gang: each chunk's positions are shared by all copies, so a
        # chunk takes its positions x step time / copies
        comp = to_ps(timing.position_ns[layer.name] * m.output_positions / (n * m.copies))
        arrays = res.get(f"arrays:{layer.name}", "compute")
        in_elems = sum(math.prod(sh) for sh in layer.input_shapes)
        bits_in = arch.decomposition.input_bits
        consumers = list(workload.graph.successors(layer.name))
        hops = (sum(mapping.hops(layer.name, c) for c in consumers) / len(consumers)
                if consumers else 0.0)
        # the chunk's stages in order: (durations, resources, class, stage), one job per
        # resource; each job waits for every job of the group before it
        groups: list[tuple[list[int], list[int], str, str]] = []

        def per_tile(port, bits, stage, cls, groups=groups, n=n, nt=nt, tiles=tiles):
            d = bits_ps(bits / (n * nt), port)
            groups.append(([d] * nt, [port_resource(port, t) for t in tiles], cls, stage))

        if gbuf is not None:
            groups.append(([bits_ps(in_elems * bits_in / n, gbuf)], [port_resource(gbuf, 0)],
                           "buffer", "global_read"))
            if network is not None:
                hop = network.hops if network.hops is not None else 1.0
                groups.append(([transfer_ps(in_elems * bits_in / n, hop)],
                               [port_resource(network, tiles[0])], "interconnect", "receive"))
        for port in in_bufs[:1]:
            per_tile(port, traffic.input_bits, "load", "buffer")
        write_group = -1
        if timing.write_ns.get(layer.name):  # operand written first (chunk 0 only)
            write_group = len(groups)
            groups.append(([to_ps(timing.write_ns[layer.name])], [arrays], "compute", "write"))
        compute_group = len(groups)
        groups.append(([comp], [arrays], "adc" if timing.adc_bound.get(layer.name)
                       else "compute", "compute"))
        for port in local_ic[:1]:
            per_tile(port, traffic.input_bits + traffic.output_bits, "local", "interconnect")
        for port in out_bufs[:1]:
            per_tile(port, traffic.output_bits, "store", "buffer")
        if network is not None:
            hop = network.hops if network.hops is not None else hops
            senders = tiles if per_tile_net else tiles[:1]  # a chip bus: one sender
            d = transfer_ps(traffic.send_bits / (n * len(senders)), hop)
            groups.append(([d] * len(senders), [port_resource(network, t) for t in senders],
                           "interconnect", "send"))
        if len(groups[-1][0]) > 1 or gbuf is not None:
            d = bits_ps(traffic.send_bits / n, gbuf) if gbuf is not None else 0
            rid = port_resource(gbuf, 0) if gbuf is not None else -1
            groups.append(([d], [rid], "buffer" if gbuf else "delay",
                           "global_write" if gbuf else "join"))
        cap = 0  # a full output buffer: chunk r waits for chunk r - cap to have left it
        if out_bufs and out_bufs[0].capacity_bits and n > 1:
            sharing = max(tiles_of_layer[t] for t in tiles)
            share = out_bufs[0].capacity_bits / sharing
            cap = max(1, int(share // max(1.0, traffic.output_bits / (n * nt))))
        # chunk 0 has every group; later chunks skip the write
        a_off, a_len, s0 = add_template(groups)
        b_off, b_len, c_b = a_off, a_len, sum(len(g[0]) for g in groups[:compute_group])
        if write_group >= 0:
            later = groups[:write_group] + groups[write_group + 1:]
            b_off, b_len, _ = add_template(later)
            c_b = sum(len(g[0]) for g in later[:compute_group - 1])
        chunk_base, last = place(i, n, a_off, a_len, b_off, b_len, ext_c, ext_s, waits, s0)
        if cap:  # the compute job waits for the output buffer to have room
            r = np.arange(cap, n)
            edges_dst.append(chunk_base[r] + c_b)
            edges_src.append(last[r - cap])
    from pimsim.dataflow._compiled import expand

    duration, resource, layer_ids, cls_ids, stage_ids, span_lo, span_hi = expand(
        templates, plan, total[0])
    # samples 1.. repeat sample 0; without pipelining a sample's first jobs wait for the sinks
    # of the one before
    links: tuple = ()
    if not pipelined and samples > 1:
        sinks = [int(outputs[i][-1]) for i, layer in enumerate(layers)
                 if not list(workload.graph.successors(layer.name))] or [int(outputs[-1][-1])]
        first = np.concatenate(sources)
        links = (np.repeat(first, len(sinks)),
                 np.tile(np.asarray(sinks, np.int64), first.size))
    graph = _Graph(
        duration=duration,
        resource=resource,
        layer=layer_ids,
        cls=cls_ids,
        stage=stage_ids,
        span_lo=span_lo,
        span_hi=span_hi,
        dst=np.concatenate(edges_dst) if edges_dst else np.zeros(0, np.int64),
        src=np.concatenate(edges_src) if edges_src else np.zeros(0, np.int64),
        layer_start=np.asarray(layer_start, np.int64),
        outputs=np.concatenate(outputs),
        cls_names=cls_code.names,
        stage_names=stage_code.names,
        samples=samples,
        links=links,
    )
    return layers, graph, res, notes


def _run_graph(graph: _Graph, n_resources: int, kernel: str, samples: int, *,
               resource: np.ndarray | None = None, group: np.ndarray | None = None):
    """Start, finish and cause arrays of ``samples`` copies of ``graph``'s jobs (streams: one
    per sample and layer) from ``kernel``; ``resource`` replaces the graph's, and ``group``
    (per job) drops the edges between groups and the streams."""
    resource = graph.resource if resource is None else resource
    links = graph.links if samples > 1 and graph.links else None
    stream = graph.layer if group is None else None
    if kernel == "static":
        from pimsim.dataflow._compiled import run_arrays  # numba loads on the first simulation

        return run_arrays(graph.duration, resource, graph.dst, graph.src, n_resources, stream,
                          samples=samples, links=links, group=group,
                          spans=(graph.span_lo, graph.span_hi))
    from pimsim.dataflow._compiled import ArrayTrace, preds_of

    n0 = graph.jobs
    keep = np.ones(graph.dst.size, bool) if group is None else (
        group[graph.dst] == group[graph.src])
    width = graph.span_hi - graph.span_lo
    span_dst = np.repeat(np.arange(n0), width)
    span_src = span_dst + np.arange(span_dst.size) - np.repeat(np.cumsum(width) - width, width)
    span_src += np.repeat(graph.span_lo, width) - span_dst
    dst = [np.concatenate([graph.dst[keep], span_dst]) + b * n0 for b in range(samples)]
    src = [np.concatenate([graph.src[keep], span_src]) + b * n0 for b in range(samples)]
    if links:
        dst += [links[0] + b * n0 for b in range(1, samples)]
        src += [links[1] + (b - 1) * n0 for b in range(1, samples)]
    width = len(graph.layer_start)
    streams = None if stream is None else [
        b * width + int(v) for b in range(samples) for v in stream.tolist()]
    trace = run(np.tile(graph.duration, samples).tolist(), np.tile(resource, samples).tolist(),
                preds_of(n0 * samples, np.concatenate(dst), np.concatenate(src)), n_resources,
                streams)
    return ArrayTrace(np.asarray(trace.start, np.int64), np.asarray(trace.finish, np.int64),
                      np.asarray(trace.cause, np.int64), trace.events)


def simulate(
    mapping,
    timing: ChipTiming,
    *,
    granularity: str = DEFAULT_GRANULARITY,
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
    if granularity not in ("row", "layer"):
        raise ValueError(f"granularity must be 'row' or 'layer', not {granularity!r}")
    if samples < 1:
        raise ValueError("samples must be >= 1")
    if pipelined is None:
        pipelined = mapping.arch.chip.pipelined
    if not pipelined:
        granularity = "layer"
    layers, graph, res, notes = _build(mapping, timing, granularity, samples, pipelined,
                                       data_movement)
    n_res = len(res.cls)
    single_trace = _run_graph(graph, n_res, kernel, 1)
    stream_trace = _run_graph(graph, n_res, kernel, samples) if samples > 1 else single_trace
    return _summarise(layers, res, notes, graph, single_trace, stream_trace, samples,
                      granularity, kernel)


def _isolated(graph: _Graph, n_res: int, kernel: str) -> np.ndarray:
    """Each layer simulated alone, its inputs ready at time 0 (its chunks pipelined through its
    stages): the finish of its last job. One run of all layers at once, each on resources of
    its own and without the edges between layers, is each layer's run alone (the service order
    within a layer is unchanged)."""
    own = np.where(graph.resource >= 0,
                   graph.layer.astype(np.int64) * n_res + graph.resource, -1)
    trace = _run_graph(graph, max(1, len(graph.layer_start) * n_res), kernel, 1,
                       resource=own, group=graph.layer)
    return np.maximum.reduceat(trace.finish, graph.layer_start)


def _summarise(layers, res, notes, graph, trace, s_trace, samples, granularity, kernel):
    """Latency, layers, stages and critical path from the one-input run (no other input
    interferes); throughput, utilisation and the trace from the streamed run."""
    n = graph.jobs
    n_res = len(res.cls)
    latency_ps = int(trace.finish[graph.outputs].max())
    names = res.names
    on = graph.resource >= 0
    busy = np.bincount(graph.resource[on], weights=graph.duration[on], minlength=n_res)
    busy = np.rint(busy).astype(np.int64)  # exact: sums of integers below 2^53
    used = np.flatnonzero(np.bincount(graph.resource[on], minlength=n_res))
    busy0 = dict(zip(used.tolist(), busy[used].tolist(), strict=True))
    starts = np.minimum.reduceat(trace.start, graph.layer_start)
    finishes = np.maximum.reduceat(trace.finish, graph.layer_start)
    isolated = _isolated(graph, n_res, kernel)
    # busy time per layer and class: resources of one kind (the copies of a layer's arrays,
    # the same buffer in several tiles) work in parallel (max); different kinds are passed in
    # turn (sum). Busy time per (layer, class) x resource (the last column: no resource):
    n_cls = len(graph.cls_names)
    key = (graph.layer.astype(np.int64) * n_cls + graph.cls) * (n_res + 1) + np.where(
        on, graph.resource, n_res)
    kind_of = np.array(res.kinds + [res.kind_codes("delay")], np.int64)
    rows, cells = len(layers) * n_cls, len(layers) * n_cls * (n_res + 1)
    per_class = np.zeros(rows, np.int64)
    if cells <= (1 << 21) * DENSE:  # a dense table
        table = np.bincount(key, weights=graph.duration, minlength=cells)
        table = np.rint(table).astype(np.int64).reshape(rows, n_res + 1)
        for kind in np.unique(kind_of).tolist():
            per_class += table[:, kind_of == kind].max(axis=1)
    else:  # the (layer, class, resource) triples that occur
        keys, inverse = np.unique(key, return_inverse=True)
        sums = np.rint(np.bincount(inverse, weights=graph.duration)).astype(np.int64)
        row, r = np.divmod(keys, n_res + 1)
        n_kinds = int(kind_of.max()) + 1
        best = np.zeros(rows * n_kinds, np.int64)
        np.maximum.at(best, row * n_kinds + kind_of[r], sums)
        per_class = best.reshape(rows, n_kinds).sum(axis=1)
    per_class = per_class.reshape(len(layers), n_cls).tolist()
    class_index = [(c, graph.cls_names.index(c)) for c in CLASSES if c in graph.cls_names]
    isolated, starts, finishes = isolated.tolist(), starts.tolist(), finishes.tolist()
    layer_out = {}
    for i, layer in enumerate(layers):
        row = per_class[i]
        layer_out[layer.name] = {
            "latency_ns": isolated[i] / PS_PER_NS,
            "start_ns": starts[i] / PS_PER_NS,
            "finish_ns": finishes[i] / PS_PER_NS,
            "latency_breakdown_ns": {c: row[ci] / PS_PER_NS for c, ci in class_index
                                     if row[ci]},
        }
    sample_finish = [int(s_trace.finish[graph.outputs + b * n].max()) for b in range(samples)]
    if samples > 1:
        period = (sample_finish[-1] - sample_finish[0]) / (samples - 1)
    else:
        period = max(busy0.values(), default=latency_ps)
    period = max(period, max(busy0.values(), default=0))
    throughput = PS_PER_NS * 1e9 / period if period else math.inf
    makespan = max(sample_finish)
    # every sample's jobs are sample 0's: the streamed run keeps each resource busy samples x
    total: dict[str, int] = defaultdict(int)
    count: dict[str, int] = defaultdict(int)
    for cls, b in zip(res.cls, busy.tolist(), strict=True):
        count[cls] += 1
        total[cls] += b * samples
    utilization = {c: total[c] / (count[c] * makespan) for c in count if makespan}
    stage_ns = {names[r]: v / PS_PER_NS for r, v in busy0.items()}
    if busy0:
        r = max(busy0, key=lambda k: (busy0[k], -k))
        bottleneck = {"resource": names[r], "class": res.cls[r], "busy_ns": busy0[r] / PS_PER_NS}
    else:
        bottleneck = {}
    # critical path of sample 0: from the output that finished last (the first such job)
    fin = trace.finish[graph.outputs]
    j = int(graph.outputs[fin == fin.max()].min())
    cause, duration, layer_of, cls_of = trace.cause, graph.duration, graph.layer, graph.cls
    path: list[dict] = []
    while j >= 0:
        d = int(duration[j])
        key = (layers[int(layer_of[j])].name, graph.cls_names[int(cls_of[j])])
        if not d:
            pass
        elif path and (path[-1]["layer"], path[-1]["class"]) == key:
            path[-1]["ns"] += d / PS_PER_NS
        else:
            path.append({"layer": key[0], "class": key[1], "ns": d / PS_PER_NS})
        j = int(cause[j])
    path.reverse()
    timeline = TimelineTrace(
        names=([layer.name for layer in layers], graph.cls_names, graph.stage_names, names),
        codes=(graph.layer, graph.cls, graph.stage, graph.resource),
        samples=samples,
        starts=s_trace.start,
        finishes=s_trace.finish,
    )
    two = samples > 1
    return DataflowResult(
        latency_ns=latency_ps / PS_PER_NS,
        throughput_fps=throughput,
        samples=samples,
        granularity=granularity,
        events=trace.events + (s_trace.events if two else 0),
        jobs=n + (n * samples if two else 0),
        layers=layer_out,
        utilization=utilization,
        critical_path=path,
        stage_ns=stage_ns,
        bottleneck=bottleneck,
        notes=tuple(notes),
        trace=timeline,
    )
