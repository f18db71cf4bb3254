"""Transformers and RNNs end to end: cost with attention on digital units and on rewritten arrays,
the accuracy oracle against float, and PIM-QAT fine-tuning, for the zoo's ViT-tiny, BERT-tiny
and LSTM; plus the torchvision-sized ViT-B/16 trace-and-evaluate time.

    python experiments/any_network.py            # writes results/any_network.md and .png

Inputs: the LSTM reads the rows of MNIST digits and ViT-tiny reads MNIST digits padded to
32 x 32 with their one channel repeated three times; both are trained here (Adam, the first
8,000 of the bundled 10,000 images; the LSTM for 3 epochs, ViT-tiny for 2) so that the oracle
sees trained weights, and evaluated on the other 2,000. BERT-tiny runs untrained on random tokens
(no text corpus ships): its figures are relative output errors, not accuracies.
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import torch
from torch import nn

import pimsim
from pimsim import oracle
from pimsim import training as T
from pimsim.workload._zoo import ZOO, zoo_model

ROOT = Path(__file__).resolve().parents[1]
ARCH = ROOT / "arch_specs" / "rram_onchip_22nm.yaml"
NETS = ("vit_tiny_cifar10", "bert_tiny", "lstm_mnist")


def _mnist(name: str, split: str):
    """MNIST images shaped for ``name`` (ViT-tiny: padded to 32 x 32, three channels)."""
    x, y = T.load_mnist(split=split)
    if name == "vit_tiny_cifar10":
        x = nn.functional.pad(x, (2, 2, 2, 2)).expand(-1, 3, -1, -1).contiguous()
    return x, y


def _inputs(name: str, n: int, gen: torch.Generator):
    shape = ZOO[name][1]
    if name == "bert_tiny":
        return torch.randint(0, 2000, (n, *shape), generator=gen)
    return _mnist(name, "test")[0][:n]


EPOCHS = {"lstm_mnist": 3, "vit_tiny_cifar10": 2}


CACHE = ROOT / "results" / "tmp"


def _train(name: str, model: nn.Module) -> float:
    """Adam on the first 8,000 bundled MNIST images; accuracy on the last 2,000. The trained
    weights are kept in ``results/tmp/`` (not committed) and reused by later runs."""
    cached = CACHE / f"any_network_{name}.pt"
    if cached.exists():
        model.load_state_dict(torch.load(cached, weights_only=True))
        return _test_accuracy(name, model)
    x, y = _mnist(name, "train")
    opt = torch.optim.Adam(model.parameters(), 2e-3 if name == "lstm_mnist" else 5e-4)
    model.train()
    for epoch in range(EPOCHS[name]):
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(epoch))
        for i in range(0, len(x), 64):
            idx = order[i : i + 64]
            loss = nn.functional.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        print(f"{name} epoch {epoch}: last loss {float(loss.detach()):.3f}", flush=True)
    model.eval()
    CACHE.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), cached)
    return _test_accuracy(name, model)


def _test_accuracy(name: str, model: nn.Module) -> float:
    model.eval()
    xt, yt = _mnist(name, "test")
    with torch.no_grad():
        return float((model(xt).argmax(1) == yt).float().mean())


ABLATION = (
    ("as above: 12-bit ADC, cells with on/off ratio 17", {}),
    ("ideal cells (no off-state current)", {"cell.on_off_ratio": None}),
    ("ideal cells, 16-bit ADC", {"cell.on_off_ratio": None, "adc.bits": 16}),
)  # fmt: skip


def _digital_8bit(model: nn.Module, cal: torch.Tensor, bits: int = 8) -> nn.Module:
    """A copy of ``model`` computed digitally with the oracle's quantization and no PIM: every
    Linear/Conv2d's weights per output channel and its input per tensor (scale = max |input| on
    ``cal`` / top level, signed), attention's products as on digital units."""
    import copy

    from pimsim.oracle._layers import DigitalMatMul, quantize_weight, replace_module
    from pimsim.workload._modules import MatMul

    twin = copy.deepcopy(model).eval()
    top = 2 ** (bits - 1) - 1
    maxima: dict[str, float] = {}
    layers = {n: m for n, m in twin.named_modules() if isinstance(m, (nn.Linear, nn.Conv2d))}

    def seen(name):
        return lambda mod, args: maxima.__setitem__(
            name, max(maxima.get(name, 0.0), float(args[0].abs().max())))

    hooks = [m.register_forward_pre_hook(seen(n)) for n, m in layers.items()]
    with torch.no_grad():
        twin(cal)
    for h in hooks:
        h.remove()
    for name, mod in layers.items():
        w_int, w_scale = quantize_weight(mod.weight, bits)
        with torch.no_grad():
            shape = (-1,) + (1,) * (mod.weight.dim() - 1)
            mod.weight.copy_((w_int * w_scale.reshape(shape)).to(mod.weight.dtype))
        step = max(maxima[name], 1e-12) / top

        def quantize(mod, args, step=step):
            return (torch.round(args[0] / step).clamp(-top, top) * step,)

        mod.register_forward_pre_hook(quantize)
    for name, mod in list(twin.named_modules()):
        if isinstance(mod, MatMul):
            replace_module(twin, name, DigitalMatMul(name, bits))
    return twin


def ablation_rows(model: nn.Module, name: str = "vit_tiny_cifar10") -> list[str]:
    """Where ViT-tiny's error against float comes from: the oracle with one source removed at a
    time (attention on digital units, 256 test images)."""
    rows = ["| ViT-tiny, attention digital | relative output error | accuracy |",
            "|---|---:|---:|"]  # fmt: skip
    x, y = _mnist(name, "test")
    x, y, cal = x[32:288], y[32:288], [x[:32]]
    with torch.no_grad():
        ref = model(x)
    for label, extra in ABLATION:
        over = {"adc.bits": 12, "adc.range": "calibrated", "decomposition.weight_bits": 8,
                "decomposition.input_bits": 8, **extra}  # fmt: skip
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            pim = oracle.convert(model, pimsim.load_arch(ARCH, over), (1, *ZOO[name][1]),
                                 calibration=cal)  # fmt: skip
            with torch.no_grad():
                out = torch.cat([pim(b) for b in torch.split(x, 32)])
        err = float((out - ref).norm() / ref.norm())
        acc = float((out.argmax(1) == y).float().mean())
        rows.append(f"| {label} | {100 * err:.2f}% | {100 * acc:.2f}% |")
        print(rows[-1], flush=True)
    with torch.no_grad():
        out = _digital_8bit(model, cal[0])(x)
    err = float((out - ref).norm() / ref.norm())
    acc = float((out.argmax(1) == y).float().mean())
    rows.append(f"| no PIM: the same 8-bit quantization computed digitally | {100 * err:.2f}% | "
                f"{100 * acc:.2f}% |")  # fmt: skip
    rows.append(f"| float | 0 | {100 * float((ref.argmax(1) == y).float().mean()):.2f}% |")
    print("\n".join(rows[-2:]), flush=True)
    return rows


def cost_rows() -> list[str]:
    rows = ["| network | attention on | MACs | energy (uJ) | latency (us) | TOPS/W | arrays | "
            "cell writes |", "|---|---|---:|---:|---:|---:|---:|---:|"]  # fmt: skip
    for name in NETS:
        wl = pimsim.load_workload(name)
        for target in ("digital", "rewrite"):
            arch = pimsim.load_arch(ARCH, {"mapping.activation_matmul": target})
            r = pimsim.evaluate(arch, wl)
            t = r.totals
            rows.append(
                f"| {name} | {target} | {t['macs']:,} | {t['energy_pj'] / 1e6:.2f} | "
                f"{t['latency_ns'] / 1e3:.1f} | {t['tops_per_w']:.2f} | {t['arrays_used']} | "
                f"{t['cell_writes']:,} |"
            )
    return rows


def oracle_rows(models: dict) -> list[str]:
    rows = ["| network | attention on | relative output error | same top-1 as float | "
            "accuracy float / PIM |", "|---|---|---:|---:|---:|"]  # fmt: skip
    gen = torch.Generator().manual_seed(0)
    for name in NETS:
        model = models[name]
        x = _inputs(name, 544, gen)
        labels = None if name == "bert_tiny" else _mnist(name, "test")[1][32:544]
        cal = [x[:32]]
        with torch.no_grad():
            ref = model(x[32:])
        for target in ("digital", "rewrite"):
            arch = pimsim.load_arch(ARCH, {"adc.bits": 12, "mapping.activation_matmul": target,
                                           "adc.range": "calibrated",
                                           "decomposition.weight_bits": 8,
                                           "decomposition.input_bits": 8})  # fmt: skip
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                pim = oracle.convert(model, arch, (1, *ZOO[name][1]), calibration=cal)
                with torch.no_grad():  # 32 inputs at a time: bounded memory
                    out = torch.cat([pim(b) for b in torch.split(x[32:], 32)])
            err = float((out - ref).norm() / ref.norm())
            same = float((out.argmax(1) == ref.argmax(1)).float().mean())
            acc = "untrained"
            if labels is not None:
                acc = (f"{100 * float((ref.argmax(1) == labels).float().mean()):.2f}% / "
                       f"{100 * float((out.argmax(1) == labels).float().mean()):.2f}%")  # fmt: skip
            rows.append(f"| {name} | {target} | {100 * err:.2f}% | {100 * same:.1f}% | {acc} |")
            print(rows[-1], flush=True)
    return rows


def pimqat_rows(models: dict, steps: int) -> list[str]:
    rows = ["| network | ADC bits | PIM-QAT loss, first step | last step |", "|---|---:|---:|---:|"]
    gen = torch.Generator().manual_seed(1)
    for name in NETS:
        shape = (1, *ZOO[name][1])
        q = T.quantize_model(models[name], 8, 8, input_shape=shape,
                             input_nonnegative=name != "bert_tiny")  # fmt: skip
        arch = pimsim.load_arch(ARCH, {"adc.bits": 6})
        pim = T.attach_pim(q, arch, shape)
        opt = torch.optim.Adam(pim.parameters(), 1e-4)
        x = _inputs(name, 64 * steps, gen)
        with torch.no_grad():
            target = models[name](x).argmax(1)  # distil the float network's decisions
        losses = []
        pim.train()
        for s in range(steps):
            sl = slice(64 * s, 64 * (s + 1))
            loss = nn.functional.cross_entropy(pim(x[sl]), target[sl])
            opt.zero_grad()
            loss.backward()
            opt.step()
            losses.append(float(loss.detach()))
        rows.append(f"| {name} | 6 | {losses[0]:.3f} | {losses[-1]:.3f} |")
        print(rows[-1], flush=True)
    return rows


def vit_b16_row() -> list[str]:
    try:
        import torchvision.models as tvm
    except Exception as exc:  # noqa: BLE001 - a wheel built for another torch fails to import
        return [f"ViT-B/16: torchvision not importable here ({type(exc).__name__})."]
    model = tvm.vit_b_16(weights=None).eval()
    arch = pimsim.load_arch(ROOT / "arch_specs" / "neurosim_rram_22nm.yaml")
    start = time.perf_counter()
    wl = pimsim.from_torch(model, (1, 3, 224, 224))
    traced = time.perf_counter()
    pimsim.evaluate(arch, wl)
    done = time.perf_counter()
    return [f"ViT-B/16 (224x224, {wl.macs:,} MACs, {len(wl.layers)} layers): from_torch "
            f"{traced - start:.2f} s + evaluate {done - traced:.2f} s = {done - start:.2f} s "
            f"on {torch.get_num_threads()} threads."]  # fmt: skip


def plot(path: Path) -> None:
    """Per-layer energy of ViT-tiny's patch embedding, first block and head (log scale, one
    colour per layer kind), with attention's products on digital units and on rewritten arrays."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    wl = pimsim.load_workload("vit_tiny_cifar10")
    fig, axes = plt.subplots(1, 2, figsize=(11, 6), sharey=True)
    colours = {}
    for ax, target in zip(axes, ("digital", "rewrite"), strict=True):
        arch = pimsim.load_arch(ARCH, {"mapping.activation_matmul": target})
        frame = pimsim.evaluate(arch, wl, latency_model="analytical").layers
        part = frame[frame["name"].str.startswith(("patch", "blocks.0.", "head"))]
        part = part[part["energy_pj"] > 0].iloc[::-1]
        for kind in part["kind"]:
            colours.setdefault(kind, f"C{len(colours)}")
        ax.barh(part["name"], part["energy_pj"] / 1e3, color=[colours[k] for k in part["kind"]])
        ax.set_xscale("log")
        ax.set_xlabel("energy per image (nJ, log scale)")
        ax.set_title(f"attention products: {target}")
        ax.tick_params(axis="y", labelsize=7)
    handles = [plt.Rectangle((0, 0), 1, 1, color=c) for c in colours.values()]
    fig.legend(handles, list(colours), fontsize=8, loc="lower center", ncol=len(colours))
    fig.suptitle("ViT-tiny on rram_onchip_22nm: patch embedding, block 0, head")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=20, help="PIM-QAT steps per network")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--plot", action="store_true", help="only the per-layer energy plot")
    parser.add_argument("--ablation", action="store_true",
                        help="only the ViT-tiny error sources (appended to the results file)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.plot:
        plot(ROOT / "results" / "any_network_vit_energy.png")
        return
    if args.ablation:
        torch.manual_seed(0)
        vit = zoo_model("vit_tiny_cifar10").eval()
        _train("vit_tiny_cifar10", vit)
        rows = ["", "## Where ViT-tiny's error comes from", "", *ablation_rows(vit), ""]
        path = ROOT / "results" / "any_network.md"
        path.write_text(path.read_text() + "\n".join(rows))
        return
    torch.manual_seed(0)
    models = {name: zoo_model(name).eval() for name in NETS}
    trained = {name: _train(name, models[name]) for name in EPOCHS}
    out = ["# Transformers and RNNs on PIM", "", __doc__.split("\n\n")[2].strip(), ""]
    out += [f"Float test accuracy after training: {name} {100 * acc:.2f}%."
            for name, acc in trained.items()] + [""]  # fmt: skip
    out += ["## Cost (rram_onchip_22nm, event model)", "", *cost_rows(), ""]
    print("\n".join(out), flush=True)
    out += ["## Oracle at a 12-bit ADC (ranges calibrated on 32 inputs), 8-bit weights and "
            "inputs, against float (512 inputs)", ""]
    out += oracle_rows(models) + [""]
    out += [f"## PIM-QAT fine-tuning from Python ({args.steps} steps of 64, Adam 1e-4)", ""]
    out += pimqat_rows(models, args.steps) + [""]
    out += ["## ViT-B/16 trace and evaluate", "", *vit_b16_row(), ""]
    plot(ROOT / "results" / "any_network_vit_energy.png")
    out += ["![ViT-tiny per-layer energy](any_network_vit_energy.png)", ""]
    (ROOT / "results" / "any_network.md").write_text("\n".join(out))
    print("\n".join(out))


if __name__ == "__main__":
    main()
