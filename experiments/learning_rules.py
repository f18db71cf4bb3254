"""Learning rules on PIM: backprop vs direct feedback alignment, device update schemes, and the
energy and latency of on-chip training.

Setup: the bundled MNIST split (train on the first 8,000 images of the shipped test set, test on
its last 2,000); ``mlp4_mnist`` (784-256-256-256-10) and ``lenet5_mnist``; plain SGD, batch 16,
learning rate 0.05, seeds 0, 1, 2 (model initialisation, data order, DFA feedback matrices and
stochastic pulses); the on-chip training designs ``arch_specs/rram_onchip_22nm.yaml`` and
``arch_specs/pcm_onchip_14nm.yaml``. Every accuracy is the PIM forward of the trained chip on
the 2,000 test images; writes are counted by the oracle's update schemes; energy, latency and
area come from :func:`pimsim.cost.training_cost` with those measured writes.

Parts (each appends finished runs to ``results/learning_rules_runs.jsonl``, so an interrupted
part continues where it stopped):

    python experiments/learning_rules.py --part table       # rules x updates x designs x nets
    python experiments/learning_rules.py --part depth       # BP/DFA latency vs layers (cost only)
    python experiments/learning_rules.py --part threshold   # mixed-precision threshold sweep
    python experiments/learning_rules.py --part threshold_ideal  # ... on an ideal device
    python experiments/learning_rules.py --part claim       # ... 3 epochs, vs float SGD
    python experiments/learning_rules.py --part variation   # on-chip vs off-chip, 10 chips
    python experiments/learning_rules.py --part variation_strong  # ... at larger variation
    python experiments/learning_rules.py --report           # tables and plots in results/
"""

from __future__ import annotations

import argparse
import json
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from _runlog import RunLog

import pimsim
from pimsim.cost import training_cost
from pimsim.training import load_mnist, train_float_sgd, train_onchip
from pimsim.training._rules import OnChipNetwork

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "results" / "learning_rules_runs.jsonl"
ARCHS = ("rram_onchip_22nm", "pcm_onchip_14nm")
NETWORKS = ("mlp4_mnist", "lenet5_mnist")
RULES = ("backprop", "dfa")
UPDATES = ("exact", "pulsed", "mixed_precision")
SEEDS = (0, 1, 2)
BATCH, LR = 16, 0.05
EPOCHS = {"mlp4_mnist": 3, "lenet5_mnist": 1}  # LeNet-5 on chip: ~3 CPU-minutes per epoch
THRESHOLDS = (0.5, 1.0, 2.0, 4.0)
#: the PCM design's one-cycle (PWM) inputs leave LeNet-5's backprop errors in the ADC's dead
#: zone (chance accuracy in a probe), so the sweep runs on the bit-serial RRAM design
THRESHOLD_ARCH, THRESHOLD_EPOCHS = "rram_onchip_22nm", EPOCHS["lenet5_mnist"]
VARIATION = {"cell.variation.within_chip": 0.2, "cell.variation.between_chip": 0.1}
STRONG_VARIATION = {"cell.variation.within_chip": 0.5, "cell.variation.between_chip": 0.3}
CHIPS = 10


def arch(name: str, extra: dict | None = None):
    spec = pimsim.load_arch(ROOT / "arch_specs" / f"{name}.yaml")
    return pimsim.with_overrides(spec, extra) if extra else spec


_LOG = RunLog(RUNS)
done_keys, record = _LOG.done_keys, _LOG.record


_DATA: dict = {}


def data():
    if not _DATA:
        _DATA["train"] = load_mnist(split="train")
        _DATA["test"] = load_mnist(split="test")
    return _DATA["train"], _DATA["test"]


def model(network: str, seed: int):
    torch.manual_seed(seed)
    return pimsim.zoo_model(network)


def onchip_run(key, spec, network, rule, update, seed, epochs, threshold=None, chip_seed=None,
               **extra):
    train, test = data()
    start = time.perf_counter()
    res = train_onchip(model(network, seed), spec, train, test, rule=rule, update=update,
                       threshold=threshold, lr=LR, epochs=epochs, batch_size=BATCH, seed=seed,
                       chip_seed=chip_seed)
    cost = training_cost(spec, pimsim.load_workload(network), rule=rule, update=update,
                         batch_size=BATCH, train_samples=len(train[0]),
                         writes_per_step=res.writes_per_step, pulses_per_step=res.pulses_per_step)
    record(key, arch=spec.name, network=network, rule=rule, update=update,
           threshold=res.threshold, seed=seed, epochs=epochs, accuracy=res.accuracy,
           per_epoch=res.epochs, writes_per_epoch=res.writes_per_epoch,
           pulses_per_epoch=sum(res.pulses.values()) / epochs,
           energy_per_epoch_pj=cost.energy_per_epoch_pj,
           energy_breakdown_pj=cost.energy_breakdown_pj,
           latency_per_step_ns=cost.latency_per_step_ns,
           extra_area_mm2=cost.extra_area_mm2, seconds=time.perf_counter() - start, **extra)


def float_run(key, network, seed, epochs):
    train, test = data()
    out = train_float_sgd(model(network, seed), train, test, lr=LR, epochs=epochs,
                          batch_size=BATCH, seed=seed)
    weights = sum(p.numel() for n, p in out["model"].named_parameters() if n.endswith("weight"))
    steps = -(-len(train[0]) // BATCH)
    record(key, network=network, rule="backprop", update="float_sgd", seed=seed, epochs=epochs,
           accuracy=out["accuracy"], per_epoch=out["epochs"], writes_per_epoch=weights * steps)


def part_table(reverse: bool = False) -> None:
    """``reverse``: the same runs, last first (a second process shares the work)."""
    done = done_keys()
    todo = []
    for network in NETWORKS:
        for seed in SEEDS:
            key = f"float|{network}|{seed}|{EPOCHS[network]}"
            if key not in done:
                float_run(key, network, seed, EPOCHS[network])
        for name in ARCHS:
            spec = arch(name)
            for rule in RULES:
                for update in UPDATES:
                    for seed in SEEDS:
                        todo.append((f"table|{name}|{network}|{rule}|{update}|{seed}", spec,
                                     network, rule, update, seed))
    for key, spec, network, rule, update, seed in reversed(todo) if reverse else todo:
        if key not in done_keys():  # another process may have run it meanwhile
            onchip_run(key, spec, network, rule, update, seed, EPOCHS[network])


def part_threshold() -> None:
    done = done_keys()
    spec = arch(THRESHOLD_ARCH)
    network = "lenet5_mnist"
    for seed in SEEDS:
        key = f"float|{network}|{seed}|{THRESHOLD_EPOCHS}"
        if key not in done:
            float_run(key, network, seed, THRESHOLD_EPOCHS)
    # exact and the default threshold (1) are runs of the table (same settings)
    for t in (*[t for t in THRESHOLDS if t != 1.0], None, 1.0):
        for seed in SEEDS:
            if t is None or t == 1.0:
                update = "exact" if t is None else "mixed_precision"
                key = f"table|{THRESHOLD_ARCH}|{network}|backprop|{update}|{seed}"
            else:
                update, key = "mixed_precision", f"threshold|{THRESHOLD_ARCH}|{t}|{seed}"
            if key not in done_keys():
                onchip_run(key, spec, network, "backprop", update, seed, THRESHOLD_EPOCHS,
                           threshold=t)


IDEAL_DEVICE = {"cell.update.nonlinearity_ltp": 0.0, "cell.update.nonlinearity_ltd": 0.0,
                "cell.update.c2c_noise": 0.0}


def part_threshold_ideal() -> None:
    """The mixed-precision scheme alone: LeNet-5 at threshold 2 on an ideal (linear, noiseless)
    device, everything else as the threshold sweep."""
    spec = arch(THRESHOLD_ARCH, IDEAL_DEVICE)
    for seed in SEEDS:
        key = f"ideal|{THRESHOLD_ARCH}|2.0|{seed}"
        if key not in done_keys():
            onchip_run(key, spec, "lenet5_mnist", "backprop", "mixed_precision", seed,
                       THRESHOLD_EPOCHS, threshold=2.0, device="ideal")


CLAIM_EPOCHS = 3


def part_claim() -> None:
    """The mixed-precision claim at a converged length: LeNet-5, backprop, threshold 2 on an
    ideal device, 3 epochs, against float SGD over the same 3 epochs."""
    spec = arch(THRESHOLD_ARCH, IDEAL_DEVICE)
    for seed in SEEDS:
        key = f"float|lenet5_mnist|{seed}|{CLAIM_EPOCHS}"
        if key not in done_keys():
            float_run(key, "lenet5_mnist", seed, CLAIM_EPOCHS)
        key = f"claim|{THRESHOLD_ARCH}|2.0|{seed}"
        if key not in done_keys():
            onchip_run(key, spec, "lenet5_mnist", "backprop", "mixed_precision", seed,
                       CLAIM_EPOCHS, threshold=2.0, device="ideal")


def part_variation(level: str = "variation", variation: dict = VARIATION) -> None:
    """On-chip (mixed precision, on each chip) vs off-chip (float SGD, then programmed) under the
    same device variation, chip by chip."""
    done = done_keys()
    network, name, epochs = "mlp_mnist", "rram_onchip_22nm", 2
    spec = arch(name, variation)
    train, test = data()
    seed = 0
    off = train_float_sgd(model(network, seed), train, test, lr=LR, epochs=epochs,
                          batch_size=BATCH, seed=seed)["model"]
    for chip in range(CHIPS):
        key = f"{level}|offchip|{chip}"
        if key not in done:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                net = OnChipNetwork(off, spec, (1, 1, 28, 28), "backprop", "exact", seed=seed,
                                    chip_seed=chip)
            record(key, arch=name, network=network, chip=chip, accuracy=net.accuracy(*test),
                   trained="off-chip float SGD, programmed")
        key = f"{level}|onchip|{chip}"
        if key not in done:
            onchip_run(key, spec, network, "backprop", "mixed_precision", seed, epochs,
                       chip_seed=chip, chip=chip, trained="on-chip mixed precision")


def part_depth() -> None:
    """Training latency per step (batch of 1) of backprop and DFA for MLPs of N = 2..6 layers,
    from the event-driven task graph; nothing trained."""
    from torch import nn  # noqa: F401

    from pimsim.workload._zoo import DeepMLP

    done = done_keys()
    for name in ARCHS:
        spec = arch(name)
        for n in range(2, 7):
            key = f"depth|{name}|{n}"
            if key in done:
                continue
            wl = pimsim.from_torch(DeepMLP(hidden=(256,) * (n - 1)), (1, 1, 28, 28),
                                   name=f"mlp{n}")
            out = {}
            for rule in RULES:
                rep = training_cost(spec, wl, rule=rule, batch_size=1)
                out[rule] = {
                    "step_ns": rep.latency_per_step_ns,
                    "backward_ns": rep.backward_latency_ns,
                    "error_ns": rep.error_latency_ns,
                    "forward_ns": rep.forward_latency_ns,
                }
            record(key, arch=name, layers=n, **out,
                   ratio_step=out["backprop"]["step_ns"] / out["dfa"]["step_ns"],
                   ratio_backward=out["backprop"]["backward_ns"] / out["dfa"]["backward_ns"],
                   ratio_error=out["backprop"]["error_ns"] / out["dfa"]["error_ns"])


# ---------------------------------------------------------------------------- report


def runs() -> dict:
    out = {}
    for line in RUNS.read_text().splitlines():
        if line.strip():
            rec = json.loads(line)
            out[rec["key"]] = rec
    return out


def _ms(values) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    return f"{np.mean(values):.2f} ± {np.std(values):.2f}"


def _diverged(run: dict) -> bool:
    """A run whose loss became non-finite or exceeded 10 (logits blown up) in some epoch."""
    return any(not np.isfinite(e["loss"]) or e["loss"] > 10 for e in run["per_epoch"])


def report() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rs = runs()
    out = ROOT / "results"
    lines = ["# Learning rules on PIM: results", "",
             "Written by `python experiments/learning_rules.py --report` from "
             "`results/learning_rules_runs.jsonl`. Mean ± std over seeds 0, 1, 2 (chips where "
             "stated). Setup in the script's docstring.", ""]
    # ---- table
    rows = []
    lines += ["## Rules x update schemes", "",
              "| design | network | rule | update | accuracy (%) | training energy / epoch (uJ) "
              "| latency / step (us) | device writes / epoch | extra area (mm2) | diverged |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for network in NETWORKS:
        ref = [r["accuracy"] * 100 for k, r in rs.items()
               if k.startswith(f"float|{network}|") and r["epochs"] == EPOCHS[network]]
        if ref:
            lines.append(f"| (digital) | {network} | backprop | float SGD | {_ms(ref)} "
                         "| - | - | - | - | - |")
        for name in ARCHS:
            for rule in RULES:
                for update in UPDATES:
                    sel = [rs[f"table|{name}|{network}|{rule}|{update}|{s}"] for s in SEEDS
                           if f"table|{name}|{network}|{rule}|{update}|{s}" in rs]
                    if not sel:
                        continue
                    acc = [r["accuracy"] * 100 for r in sel]
                    energy = [r["energy_per_epoch_pj"] * 1e-6 for r in sel]
                    lat = [r["latency_per_step_ns"] * 1e-3 for r in sel]
                    writes = [r["writes_per_epoch"] for r in sel]
                    area = [r["extra_area_mm2"] for r in sel]
                    bad = sum(_diverged(r) for r in sel)
                    lines.append(
                        f"| {name} | {network} | {rule} | {update} | {_ms(acc)} "
                        f"| {np.mean(energy):.4g} | {np.mean(lat):.4g} | {np.mean(writes):.3g} "
                        f"| {np.mean(area):.3g} | {bad}/{len(sel)} |")
                    rows.append({"arch": name, "network": network, "rule": rule,
                                 "update": update, "accuracy": np.mean(acc),
                                 "accuracy_std": np.std(acc), "energy_uj": np.mean(energy),
                                 "latency_us": np.mean(lat), "writes": np.mean(writes),
                                 "extra_area_mm2": np.mean(area), "seeds": len(sel)})
    lines.append("")
    if rows:
        import pandas as pd

        pd.DataFrame(rows).to_csv(out / "learning_rules_table.csv", index=False)
        fig, axes = plt.subplots(1, len(NETWORKS), figsize=(11, 4))
        for ax, network in zip(axes, NETWORKS, strict=True):
            for r in rows:
                if r["network"] != network:
                    continue
                marker = {"exact": "o", "pulsed": "s", "mixed_precision": "^"}[r["update"]]
                color = {"backprop": "tab:blue", "dfa": "tab:orange"}[r["rule"]]
                face = color if r["arch"] == ARCHS[0] else "none"
                ax.errorbar(r["energy_uj"], r["accuracy"], yerr=r["accuracy_std"], fmt=marker,
                            color=color, mfc=face, ms=8)
            ax.set_xscale("log")
            ax.set_xlabel("training energy per epoch (uJ)")
            ax.set_ylabel("test accuracy (%)")
            ax.set_title(network)
            ax.grid(alpha=0.3)
        from matplotlib.lines import Line2D

        handles = [Line2D([], [], color="tab:blue", marker="o", ls="", label="backprop"),
                   Line2D([], [], color="tab:orange", marker="o", ls="", label="DFA"),
                   Line2D([], [], color="k", marker="o", ls="", label="exact"),
                   Line2D([], [], color="k", marker="s", ls="", label="pulsed"),
                   Line2D([], [], color="k", marker="^", ls="", label="mixed precision"),
                   Line2D([], [], color="k", marker="o", mfc="none", ls="",
                          label=f"open: {ARCHS[1]}")]
        axes[-1].legend(handles=handles, fontsize=7)
        fig.tight_layout()
        fig.savefig(out / "learning_rules_table.png", dpi=120)
        plt.close(fig)
    # ---- depth
    depth = sorted((r for k, r in rs.items() if k.startswith("depth|")),
                   key=lambda r: (r["arch"], r["layers"]))
    if depth:
        lines += ["## Training latency per step, backprop / DFA, vs layers (batch 1)", "",
                  "`error` = from the loss until every layer has its error (the backward "
                  "products, transfers and routing); `step` = the whole step (forward, errors, "
                  "gradients, accumulator traffic, writes).", "",
                  "| design | layers N | BP error (ns) | DFA error (ns) | ratio error "
                  "| BP step (ns) | DFA step (ns) | ratio step |", "|---" * 8 + "|"]
        for r in depth:
            lines.append(f"| {r['arch']} | {r['layers']} | {r['backprop']['error_ns']:.4g} "
                         f"| {r['dfa']['error_ns']:.4g} | {r['ratio_error']:.2f} "
                         f"| {r['backprop']['step_ns']:.4g} | {r['dfa']['step_ns']:.4g} "
                         f"| {r['ratio_step']:.3f} |")
        lines.append("")
        fig, ax = plt.subplots(figsize=(5, 4))
        for name in ARCHS:
            sel = [r for r in depth if r["arch"] == name]
            ns = [r["layers"] for r in sel]
            ax.plot(ns, [r["ratio_error"] for r in sel], "o-", label=f"{name}: error delivery")
            ax.plot(ns, [r["ratio_step"] for r in sel], "s--", label=f"{name}: whole step")
        ax.plot([2, 6], [2, 6], "k:", label="N")
        ax.set_xlabel("layers N")
        ax.set_ylabel("latency backprop / DFA")
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / "learning_rules_depth.png", dpi=120)
        plt.close(fig)
    # ---- threshold
    thr = [r for k, r in rs.items() if k.startswith(f"threshold|{THRESHOLD_ARCH}|")] + [
        r for k, r in rs.items()
        if k.startswith(f"table|{THRESHOLD_ARCH}|lenet5_mnist|backprop|")
        and r["update"] in ("exact", "mixed_precision")]
    if thr:
        ref = [r["accuracy"] * 100 for k, r in rs.items()
               if k.startswith("float|lenet5_mnist|") and r["epochs"] == THRESHOLD_EPOCHS]
        exact = [r for r in thr if r["update"] == "exact"]
        base_writes = np.mean([r["writes_per_epoch"] for r in exact]) if exact else None
        lines += [f"## Mixed-precision threshold sweep (LeNet-5, {THRESHOLD_ARCH}, backprop, "
                  f"{THRESHOLD_EPOCHS} epochs)", "",
                  f"Exact float SGD (digital, same split, batches, rate, epochs): {_ms(ref)} %.",
                  "", "| update | threshold (steps) | accuracy (%) | vs float SGD (points) "
                  "| device writes / epoch | fewer writes than exact |", "|---" * 6 + "|"]
        trows = []
        for t in (None, *THRESHOLDS):
            sel = exact if t is None else [r for r in thr if r["update"] == "mixed_precision"
                                           and r["threshold"] == t]
            if not sel:
                continue
            acc = [r["accuracy"] * 100 for r in sel]
            writes = np.mean([r["writes_per_epoch"] for r in sel])
            gap = np.mean(acc) - np.mean(ref) if ref else float("nan")
            fewer = base_writes / writes if base_writes and writes else float("nan")
            lines.append(f"| {'exact' if t is None else 'mixed precision'} | "
                         f"{'-' if t is None else t} | {_ms(acc)} | {gap:+.2f} | {writes:.3g} "
                         f"| {fewer:.1f}x |")
            trows.append((t, np.mean(acc), np.std(acc), writes))
        ideal = [r for k, r in rs.items() if k.startswith(f"ideal|{THRESHOLD_ARCH}|")]
        if ideal:
            acc = [r["accuracy"] * 100 for r in ideal]
            writes = np.mean([r["writes_per_epoch"] for r in ideal])
            gap = np.mean(acc) - np.mean(ref) if ref else float("nan")
            fewer = base_writes / writes if base_writes and writes else float("nan")
            lines.append(f"| mixed precision, ideal device (linear, no write noise) | 2.0 "
                         f"| {_ms(acc)} | {gap:+.2f} | {writes:.3g} | {fewer:.1f}x |")
        lines.append("")
        mp = [r for r in trows if r[0] is not None]
        if mp:
            fig, ax1 = plt.subplots(figsize=(5, 4))
            ts = [r[0] for r in mp]
            ax1.errorbar(ts, [r[1] for r in mp], yerr=[r[2] for r in mp], fmt="o-",
                         color="tab:blue", label="mixed precision")
            if ref:
                ax1.axhline(np.mean(ref), color="tab:blue", ls=":", label="float SGD")
            ax1.set_xscale("log", base=2)
            ax1.set_xlabel("threshold (nominal device steps)")
            ax1.set_ylabel("test accuracy (%)", color="tab:blue")
            ax2 = ax1.twinx()
            ax2.plot(ts, [r[3] for r in mp], "s--", color="tab:red")
            if base_writes:
                ax2.axhline(base_writes, color="tab:red", ls=":")
            ax2.set_yscale("log")
            ax2.set_ylabel("device writes per epoch (dotted: exact)", color="tab:red")
            ax1.legend(fontsize=7, loc="lower left")
            fig.tight_layout()
            fig.savefig(out / "learning_rules_threshold.png", dpi=120)
            plt.close(fig)
    # ---- the mixed-precision claim at 3 epochs
    claim = [r for k, r in rs.items() if k.startswith("claim|")]
    if claim:
        ref = [r["accuracy"] * 100 for k, r in rs.items()
               if k.startswith("float|lenet5_mnist|") and r["epochs"] == CLAIM_EPOCHS]
        exact = [r["writes_per_epoch"] for k, r in rs.items()
                 if k.startswith(f"table|{THRESHOLD_ARCH}|lenet5_mnist|backprop|exact|")]
        acc = [r["accuracy"] * 100 for r in claim]
        writes = np.mean([r["writes_per_epoch"] for r in claim])
        lines += [f"## Mixed precision vs float SGD, LeNet-5, {CLAIM_EPOCHS} epochs", "",
                  f"{THRESHOLD_ARCH} with an ideal device (linear, no write noise), backprop, "
                  "threshold 2 nominal steps.", "",
                  "| training | accuracy (%) | device writes / epoch |", "|---|---|---|",
                  f"| exact float SGD (digital) | {_ms(ref)} | - |",
                  f"| on chip, mixed precision | {_ms(acc)} | {writes:.3g} |"]
        if exact:
            lines.append(f"| on chip, exact (every non-zero update written; 1-epoch runs) | - "
                         f"| {np.mean(exact):.3g} ({np.mean(exact) / writes:.1f}x more) |")
        lines.append("")
    # ---- variation
    levels = (("variation", VARIATION), ("strong", STRONG_VARIATION))
    if any(k.startswith(("variation|", "strong|")) for k in rs):
        lines += ["## On-chip vs off-chip training under device variation", "",
                  "mlp_mnist (2 epochs) on rram_onchip_22nm; each chip is trained on chip "
                  "(backprop, mixed precision, threshold 1) or receives the off-chip float-SGD "
                  "model (same epochs, data, rate), programmed.", "",
                  "| variation | trained | chips | mean accuracy (%) | worst chip (%) |",
                  "|---|---|---|---|---|"]
        for level, var in levels:
            for label, tag in (("on chip (mixed precision)", "onchip"),
                               ("off chip, then programmed", "offchip")):
                vals = [r["accuracy"] * 100 for k, r in rs.items()
                        if k.startswith(f"{level}|{tag}|")]
                if vals:
                    text = ", ".join(f"{k.split('.')[-1]} {v}" for k, v in var.items())
                    lines.append(f"| {text} | {label} | {len(vals)} | {_ms(vals)} "
                                 f"| {min(vals):.2f} |")
        lines.append("")
    (out / "learning_rules.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=("table", "depth", "threshold", "threshold_ideal",
                                           "variation", "variation_strong", "claim"))
    parser.add_argument("--report", action="store_true")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--reverse", action="store_true", help="table: last runs first")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.part:
        if args.part == "table":
            part_table(args.reverse)
        else:
            {"depth": part_depth, "threshold": part_threshold,
             "threshold_ideal": part_threshold_ideal, "variation": part_variation,
             "claim": part_claim,
             "variation_strong": lambda: part_variation("strong", STRONG_VARIATION),
             }[args.part]()
    if args.report:
        report()


if __name__ == "__main__":
    main()
