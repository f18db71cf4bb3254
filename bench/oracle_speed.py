"""Speed and memory of the accuracy oracle, measured side by side in one process.

(a) bit-serial (8-bit inputs and weights, 1-bit cells, two's complement, 128 rows per ADC read,
    8-bit ADC) on a 512x512 linear layer, batch 256, against the floor: one batched float32 product
    computing every partial sum, torch.matmul of [4, 256*8, 128] by [4, 128, 512*8]. Goal <= 2.0.
(b) native, 6-bit inputs and weights, one conversion per column per array (rows per read = rows
    = 512), 8-bit ADC, batch 256, against nn.Linear(512, 512). Goal <= 1.5. Also native with 128
    rows per read (no goal).
(c) peak memory (ru_maxrss of a subprocess) of ResNet-20 batch 128 inference on isaac.yaml
    overridden to 8-bit bit-serial with 128 rows per read, with ``chunk`` chosen so that no
    partial-sum tensor exceeds 2 GiB. Goal < 3 GiB.

On CPU the speed table is printed twice: with glibc's default allocator, then (same process) after
``pimsim.oracle.tune_cpu_allocator()``, which the ``pimsim accuracy`` and ``train`` commands use;
the setting is process-wide, so the references run with it too.

Times come from one series of alternating blocks (5 calls of pimsim, 5 of the reference, the
order flipped every round): the columns give the median per-call time of each, "median ratio"
the median of the per-round ratios (robust to slow spells of a shared machine).

    python bench/oracle_speed.py [--repeats 15] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch
from torch import nn

import pimsim
import pimsim.oracle

ROOT = Path(__file__).resolve().parents[1]

BASE = """\
kind: arch
name: bench
technology: {{node_nm: 32, clock_hz: 1.0e9}}
cell: {{device: rram}}
array: {{rows: {rows}, cols: {cols}, rows_per_adc_read: {rpr}}}
adc: {{model: survey, bits: 8, cols_per_adc: 1, range: full_scale}}
decomposition: {{scheme: {scheme}, input_bits: {bits}, weight_bits: {bits}}}
pe: {{arrays: 8}}
tile: {{pes: 8}}
chip: {{tiles: auto}}
"""


def arch_for(**fields) -> pimsim.ArchSpec:
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
        f.write(BASE.format(**fields))
    try:
        return pimsim.load_arch(f.name)
    finally:
        os.unlink(f.name)


def timed_pair(fn, ref, repeats: int, device: str, block: int = 5) -> tuple[float, float, float]:
    """Time ``fn`` against ``ref`` in alternating blocks of ``block`` calls, ``repeats`` rounds
    after a warm-up block of each; the order flips every round (fn then ref, ref then fn) so that
    neither always runs after the other's memory traffic. Each block runs warm, as back-to-back
    calls do. Returns the median per-call seconds of each and the median of the per-round
    ratios (fn block / ref block of the same round), which a slow spell of a shared machine
    lasting longer than one round leaves unchanged."""

    def one_block(f) -> float:
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        for _ in range(block):
            f()
        if device == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - start) / block

    one_block(fn)
    one_block(ref)
    t_fn, t_ref = [], []
    for i in range(repeats):
        if i % 2:
            t_ref.append(one_block(ref))
            t_fn.append(one_block(fn))
        else:
            t_fn.append(one_block(fn))
            t_ref.append(one_block(ref))
    ratios = [a / b for a, b in zip(t_fn, t_ref, strict=True)]
    return statistics.median(t_fn), statistics.median(t_ref), statistics.median(ratios)


def pim_linear(arch, device):
    torch.manual_seed(0)
    linear = nn.Sequential(nn.Linear(512, 512)).to(device)
    calib = [torch.rand(256, 512, device=device)]
    pim = pimsim.oracle.convert(linear, arch, (1, 512), calibration=calib)
    return linear, pim.to(device)


def speed(repeats: int, device: str) -> list[tuple[str, float, float, float, str]]:
    rows = []
    x = torch.rand(256, 512, device=device)
    with torch.no_grad():
        serial = arch_for(rows=128, cols=128, rpr=128, scheme="bit_serial", bits=8)
        _, pim = pim_linear(serial, device)
        a = torch.rand(4, 256 * 8, 128, device=device)
        b = torch.rand(4, 128, 512 * 8, device=device)
        timing = timed_pair(lambda: pim(x), lambda: torch.matmul(a, b), repeats, device)
        rows.append(("(a) bit-serial 8b, 128 rows/read", *timing, "<= 2.0"))
        for rpr, goal in ((512, "<= 1.5"), (128, "-")):
            native = arch_for(rows=512, cols=512, rpr=rpr, scheme="native", bits=6)
            linear, pim = pim_linear(native, device)
            timing = timed_pair(
                lambda pim=pim: pim(x), lambda linear=linear: linear(x), repeats, device
            )
            rows.append((f"(b) native 6b, {rpr} rows/read", *timing, goal))
    return rows


def memory_child() -> None:
    """Run in a subprocess: ResNet-20 batch 128 on 8-bit bit-serial ISAAC, print peak RSS."""
    import resource

    arch = pimsim.load_arch(
        ROOT / "arch_specs" / "isaac.yaml",
        {
            "decomposition.input_bits": 8,
            "decomposition.weight_bits": 8,
            "decomposition.signed_encoding": "twos_complement",
            "adc.range": "full_scale",
            "cell.bits": 1,
            "dac.bits": 1,
            "array.rows_per_adc_read": 128,
            "chip.tiles": "auto",
        },
    )
    model = pimsim.zoo_model("resnet20_cifar10").eval()
    # Largest partial-sum tensor per row of im2col: row groups x cycles x slices x columns x 4 B;
    # choose the chunk (rows at once) so that it stays under 2 GiB.
    net = pimsim.load_workload("resnet20_cifar10")
    mapping = pimsim.map_network(arch, net)
    per_row = max(
        sum(m.row_groups) * m.input_cycles * m.weight_slices * m.n_cols * m.matrices * 4
        for m in mapping.layers.values()
    )
    chunk = max(1, (2 * 2**30) // per_row)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pim = pimsim.oracle.convert(model, arch, (1, 3, 32, 32), mapping=mapping, chunk=chunk)
    with torch.no_grad():
        pim(torch.rand(128, 3, 32, 32))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"peak_bytes": peak, "chunk": chunk, "per_row_bytes": per_row}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.memory_child:
        memory_child()
        return
    torch.backends.cuda.matmul.allow_tf32 = False
    name = torch.cuda.get_device_name() if args.device == "cuda" else platform.machine()
    print(
        f"device: {args.device} ({name}), torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, median of {args.repeats}"
    )
    print(f"{'case':<34}{'pimsim ms':>10}{'reference ms':>14}{'median ratio':>14}  goal")
    for case, t_pim, t_ref, ratio, goal in speed(args.repeats, args.device):
        print(f"{case:<34}{t_pim * 1e3:>10.2f}{t_ref * 1e3:>14.2f}{ratio:>14.2f}  {goal}")
    if args.device == "cpu" and pimsim.oracle.tune_cpu_allocator():
        print(
            "after pimsim.oracle.tune_cpu_allocator() (freed memory kept for reuse; it is "
            "process-wide, so the references get it too):"
        )
        for case, t_pim, t_ref, ratio, goal in speed(args.repeats, args.device):
            print(f"{case:<34}{t_pim * 1e3:>10.2f}{t_ref * 1e3:>14.2f}{ratio:>14.2f}  {goal}")
    out = subprocess.run(
        [sys.executable, __file__, "--memory-child"], capture_output=True, text=True, check=True
    )
    mem = json.loads(out.stdout.strip().splitlines()[-1])
    print(
        f"(c) ResNet-20 batch 128, 8-bit bit-serial ISAAC: peak RSS "
        f"{mem['peak_bytes'] / 2**30:.2f} GiB (chunk {mem['chunk']} rows, goal < 3 GiB)"
    )


if __name__ == "__main__":
    main()
