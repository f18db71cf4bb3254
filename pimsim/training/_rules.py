"""On-chip training with a learning rule: every product of the training step on PIM arrays.

:class:`OnChipNetwork` turns a chain network (MLPs, LeNet-style CNNs: conv/linear layers joined
by activations, pooling and flatten) into its on-chip training form:

* **forward**: each conv/linear layer is the oracle's ``PimConv2d`` / ``PimLinear`` (the single
  definition of the forward computation), its bias added digitally; activation scales are
  measured per batch (a running maximum in hardware).
* **backprop** (``rule="backprop"``): the error at a layer's output reaches its input through the
  *transposed* read of the same weights: the error (signed, quantized at the arch's input bits)
  drives the columns and the rows are converted. It is computed by a second oracle layer that
  holds the transposed integer matrix of the forward layer's cells (re-programmed whenever they
  are), so the backward products pass the same cell slicing, ADC and non-idealities; the
  per-channel weight scales are applied digitally to the error before the DAC. For a conv
  layer the transposed read gives the im2col-ordered input gradient, which the digital units
  fold back (``F.fold``) onto the input. The transposed read draws its own device variation
  with the same statistics (not the same per-device factors).
* **direct feedback alignment** (``rule="dfa"``, Nøkland 2016): each layer's input is detached,
  so no error flows between layers. The output error ``e = softmax(logits) - onehot`` (per
  sample, divided by the batch size) is projected to every hidden layer through a fixed random
  matrix ``B_l`` stored on arrays of its own (an oracle layer from ``n_classes`` to the size of
  that layer's block output: quantized weights, signed quantized inputs, ADCs). **Where the error
  enters a conv layer:** at the output of its block, i.e. after its activation and pooling
  (LeNet-5's conv1: 6 x 14 x 14 values), from where the digital units route it back through the
  pooling (to the max positions) and multiply it by the activation's derivative, as for a
  linear layer; the conv's weight gradient is then the usual correlation of that error with the
  layer's input. The last layer learns from ``e`` itself.
* **weight gradients** are computed digitally (outer products / correlations of the error with
  the layer's input) and reach the devices through the update scheme of
  :mod:`pimsim.training._devices` (``exact``, ``pulsed`` or ``mixed_precision``), which counts
  device writes. The biases are digital and updated exactly.

With device variation in the spec the network is one chip (``chip_seed``): the same per-device
factors apply to whatever level is programmed, so training sees, and can compensate, its chip.
"""

from __future__ import annotations

import copy
import dataclasses
import math
import time
import warnings
from collections import OrderedDict
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from pimsim.training._devices import UPDATES, DeviceWeights

RULES = ("backprop", "dfa")


class _PimProduct(torch.autograd.Function):
    """Forward: the PIM layer's output. Backward: the weight gradient (digital) and, when the
    input needs one, the input gradient by the transposed PIM read."""

    @staticmethod
    def forward(ctx, x, weight, layer):
        ctx.layer = layer
        ctx.save_for_backward(x)
        with torch.no_grad():
            return layer.pim(x)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        layer = ctx.layer
        gw = layer.weight_gradient(x, grad)
        gx = layer.transposed_read(grad, x.shape) if ctx.needs_input_grad[0] else None
        return gx, gw, None


class OnChipLayer(nn.Module):
    """A conv/linear layer trained on chip: its float parameters hold the device weights (for
    gradients and export), ``pim`` computes the forward, ``transposed`` the backprop read,
    ``feedback`` (DFA) the projection of the output error to this layer's block output."""

    def __init__(self, module: nn.Module, pim, devices: DeviceWeights, fixed_scale):
        super().__init__()
        self.module = module
        self.pim = pim
        self.devices = devices
        self.fixed_scale = fixed_scale  # per output channel, or None (exact: re-derived)
        self.transposed = None
        self.feedback = None
        self.capture: list | None = None  # DFA: block outputs entering this layer
        self.chip = None  # (arch, e_chip, seed, transposed seed) of the chip it belongs to

    @property
    def weight(self):
        return self.module.weight

    @property
    def bias(self):
        return self.module.bias

    def forward(self, x):
        if self.capture is not None:
            self.capture.append(x)
            x = x.detach()
        y = _PimProduct.apply(x, self.module.weight, self)
        if self.bias is not None:
            b = self.bias.view(1, -1, *([1] * (y.dim() - 2)))
            y = y + b
        return y

    # ---------------------------------------------------------------- backward products
    def weight_gradient(self, x, grad):
        """dL/dW from the layer input and the error at its output (digital units)."""
        w = self.module.weight
        if isinstance(self.module, nn.Conv2d):
            m = self.module
            return torch.nn.grad.conv2d_weight(
                x, w.shape, grad, m.stride, m.padding, m.dilation, m.groups
            )
        return grad.reshape(-1, grad.shape[-1]).t() @ x.reshape(-1, x.shape[-1])

    def transposed_read(self, grad, input_shape):
        """The input gradient W^T grad, read through the transposed arrays."""
        if self.transposed is None:
            raise RuntimeError(f"{self.pim.name}: no transposed read (rule is not backprop)")
        scale = self.pim.weight_scale.to(grad.dtype)  # per output channel, applied digitally
        if isinstance(self.module, nn.Conv2d):
            b, n = grad.shape[0], grad.shape[1]
            rows = grad.permute(0, 2, 3, 1).reshape(-1, n) * scale
            with torch.no_grad():
                cols = self.transposed(rows)  # [B*L, K]
            cols = cols.view(b, -1, cols.shape[-1]).transpose(1, 2)
            args = self.pim.conv_args
            return F.fold(cols, input_shape[-2:], **args)
        rows = grad.reshape(-1, grad.shape[-1]) * scale
        with torch.no_grad():
            out = self.transposed(rows)
        return out.reshape(input_shape)

    # ---------------------------------------------------------------- programming
    def reprogram(self) -> None:
        """Write the devices' weights into the forward arrays (and their transpose), and re-apply
        the chip's per-device factors to the new levels."""
        w = self.devices.weight
        self.pim.program(w, self.fixed_scale)
        if self.transposed is not None:
            n = self.pim.weight_int.shape[0]
            w_int = self.pim.weight_int.reshape(n, -1).t()  # [K, N]
            self.transposed.program(w_int, torch.ones(w_int.shape[0], dtype=torch.float64))
        if self.chip is not None:  # re-apply the chip's per-device factors to the new levels
            arch, e_chip, seed, t_seed = self.chip
            self.pim.set_chip(arch, e_chip, seed)
            if self.transposed is not None:
                self.transposed.set_chip(arch, e_chip, t_seed)
        with torch.no_grad():
            self.module.weight.copy_(w.to(self.module.weight.dtype))


def _oracle_linear(arch, name: str, n_in: int, n_out: int, weight=None, signed=True):
    """An oracle ``PimLinear`` of ``n_in -> n_out`` mapped on ``arch`` (bias-free, per-batch
    input scale) holding ``weight``."""
    from pimsim.mapping import map_network
    from pimsim.oracle._engine import make_plan
    from pimsim.oracle._layers import PimLinear
    from pimsim.spec import with_overrides
    from pimsim.workload import from_torch

    lin = nn.Linear(n_in, n_out, bias=False)
    if weight is not None:
        with torch.no_grad():
            lin.weight.copy_(weight)
    aux = arch if arch.chip.tiles == "auto" else with_overrides(arch, {"chip.tiles": "auto"})
    workload = from_torch(nn.Sequential(OrderedDict([("product", lin)])), (1, n_in))
    mapping = map_network(aux, workload)
    plan = make_plan(arch, mapping.layers["product"], signed)
    with torch.no_grad():
        layer = PimLinear(name, plan, lin, input_scale=None)
    layer.dynamic_scale = True
    return layer


def _levels(arch) -> int:
    return arch.cell.update.levels or 2**arch.decomposition.weight_bits - 1


class OnChipNetwork:
    """``model`` (a chain of conv/linear layers; see the module docstring) prepared for on-chip
    training on ``arch`` with ``rule`` and the spec's ``training.update`` (or ``update``).

    ``seed`` draws the DFA feedback matrices and the stochastic pulses; ``chip_seed`` (None:
    chip 0) draws the chip's non-idealities, if the spec has any."""

    def __init__(self, model, arch, input_shape, rule=None, update=None, threshold=None,
                 seed: int = 0, chip_seed: int | None = None):
        from pimsim.mapping import map_network
        from pimsim.oracle._convert import _signed
        from pimsim.oracle._engine import make_plan
        from pimsim.oracle._layers import (
            PimConv2d,
            PimLinear,
            non_negative_inputs,
            replace_module,
        )
        from pimsim.oracle._nonideal import draw_chip
        from pimsim.workload import from_torch

        cfg = arch.training
        self.rule = rule or cfg.rule
        self.update = update or cfg.update
        self.threshold = cfg.threshold if threshold is None else threshold
        if self.rule not in RULES:
            raise ValueError(f"rule must be one of {RULES}, not {self.rule!r}")
        if self.update not in UPDATES:
            raise ValueError(f"update must be one of {UPDATES}, not {self.update!r}")
        self.arch = arch
        self.input_shape = tuple(input_shape)
        workload = from_torch(model, self.input_shape)
        self.workload = workload
        self.mapping = map_network(arch, workload)
        self.model = copy.deepcopy(model)
        modules = dict(self.model.named_modules())
        names = [n for n in self.mapping.layers if n in modules]
        if not names:
            raise ValueError("the model has no conv or linear layer to train")
        for n in names:
            m = modules[n]
            if isinstance(m, nn.Conv2d) and m.groups != 1:
                raise ValueError(f"{n}: grouped convolutions are not supported on chip")
        self.names = names
        non_negative = non_negative_inputs(workload)
        gen = torch.Generator().manual_seed(seed)
        self.generator = gen
        update_spec = arch.cell.update.model_copy(update={"levels": _levels(arch)})
        # every layer is one chip's (set_chip leaves an ideal spec's cells as programmed)
        chip = draw_chip(arch, names, 0 if chip_seed is None else chip_seed)
        self.layers: dict[str, OnChipLayer] = {}
        for n in names:
            m = modules[n]
            plan = make_plan(arch, self.mapping.layers[n], _signed(arch, n, non_negative, m, None))
            cls = PimConv2d if isinstance(m, nn.Conv2d) else PimLinear
            with torch.no_grad():
                pim = cls(n, plan, m, input_scale=None)
            pim.bias = None
            pim.dynamic_scale = True
            w_max = cfg.weight_range * float(m.weight.detach().abs().max())
            top = 2 ** (arch.decomposition.weight_bits - 1) - 1
            fixed = None
            if self.update != "exact":
                fixed = torch.full((m.weight.shape[0],), w_max / top, dtype=torch.float64)
            devices = DeviceWeights(m.weight, self.update, update_spec, w_max, self.threshold, gen)
            layer = OnChipLayer(m, pim, devices, fixed)
            if self.rule == "backprop" and n != names[0]:
                k = m.weight[0].numel()
                layer.transposed = _oracle_linear(arch, f"{n}:transposed", m.weight.shape[0], k)
            layer.chip = (arch, chip.e_chip, chip.layer_seeds[n],
                          (chip.layer_seeds[n] + 1) % 2**63)
            replace_module(self.model, n, layer)
            self.layers[n] = layer
        self._n_classes = modules[names[-1]].weight.shape[0]
        if self.rule == "dfa":
            by_name = {layer.name: layer for layer in workload.layers}
            for prev, nxt in zip(names[:-1], names[1:], strict=True):
                shape = by_name[nxt].input_shapes[0]
                features = int(torch.tensor(shape).prod())
                b = torch.empty(features, self._n_classes).uniform_(-1, 1, generator=gen)
                b /= features**0.5  # the scale of a Linear(features -> classes) init
                fb = _oracle_linear(arch, f"{prev}:feedback", self._n_classes, features, b)
                fb.set_chip(arch, chip.e_chip, (chip.layer_seeds[prev] + 2) % 2**63)
                self.layers[prev].feedback = fb
                self.layers[prev].block_shape = tuple(shape)
        for layer in self.layers.values():
            layer.reprogram()

    # ---------------------------------------------------------------- one step
    def step(self, x: torch.Tensor, y: torch.Tensor, lr: float) -> float:
        """One SGD step on the batch ``(x, y)``; returns the batch's loss."""
        self.model.train()
        layers = list(self.layers.values())
        for layer in layers:
            layer.module.weight.grad = None
            if layer.bias is not None:
                layer.bias.grad = None
        if self.rule == "backprop":
            logits = self.model(x)
            loss = F.cross_entropy(logits, y)
            loss.backward()
        else:
            captured: list = []
            for layer in layers[1:]:
                layer.capture = captured
            try:
                logits = self.model(x)
            finally:
                for layer in layers[1:]:
                    layer.capture = None
            loss = F.cross_entropy(logits, y)
            error = (F.softmax(logits.detach(), dim=1)
                     - F.one_hot(y, logits.shape[1]).to(logits.dtype)) / len(y)
            self.last_error = error
            grads = []
            for layer, h in zip(layers[:-1], captured, strict=True):
                with torch.no_grad():
                    grads.append(layer.feedback(error).view_as(h))
            torch.autograd.backward([logits, *captured], [error, *grads])
        with torch.no_grad():
            for layer in layers:
                layer.devices.apply(-lr * layer.module.weight.grad)
                if layer.bias is not None:
                    layer.bias.sub_(lr * layer.bias.grad)
                layer.reprogram()
        return float(loss.detach())

    # ---------------------------------------------------------------- reading it
    def accuracy(self, x: torch.Tensor, y: torch.Tensor, batch: int = 500) -> float:
        """Top-1 accuracy of the chip as it stands (PIM forward)."""
        self.model.eval()
        correct = 0
        with torch.no_grad():
            for i in range(0, len(x), batch):
                correct += int((self.model(x[i : i + batch]).argmax(1) == y[i : i + batch]).sum())
        return correct / len(x)

    def writes(self) -> dict[str, int]:
        """Device writes per layer since the start (see :class:`~._devices.WriteCounter`)."""
        return {n: layer.devices.counter.writes for n, layer in self.layers.items()}

    def pulses(self) -> dict[str, int]:
        """Programming pulses per layer since the start."""
        return {n: layer.devices.counter.pulses for n, layer in self.layers.items()}

    def conversions(self) -> dict[str, dict[str, int]]:
        """ADC conversions since the start, per layer and product (forward, transposed,
        feedback)."""
        out = {}
        for n, layer in self.layers.items():
            rec = {"forward": layer.pim.conversions}
            if layer.transposed is not None:
                rec["transposed"] = layer.transposed.conversions
            if layer.feedback is not None:
                rec["feedback"] = layer.feedback.conversions
            out[n] = rec
        return out

    def float_model(self) -> nn.Module:
        """A plain torch copy of the network holding the devices' weights."""
        out = copy.deepcopy(self.model)
        from pimsim.oracle._layers import replace_module

        for n, layer in list(_onchip_layers(out).items()):
            replace_module(out, n, layer.module)
        return out


def _onchip_layers(model) -> dict:
    return {n: m for n, m in model.named_modules() if isinstance(m, OnChipLayer)}


@dataclass
class OnChipResult:
    """What :func:`train_onchip` measured."""

    rule: str
    update: str
    threshold: float
    accuracy: float
    epochs: list = field(default_factory=list)
    """Per epoch: loss, test accuracy, writes, pulses, seconds."""
    writes: dict = field(default_factory=dict)
    pulses: dict = field(default_factory=dict)
    steps: int = 0
    samples_per_epoch: int = 0
    batch_size: int = 0
    conversions: dict = field(default_factory=dict)
    network: object = field(default=None, repr=False)

    @property
    def writes_per_epoch(self) -> float:
        """Device writes per epoch (all layers)."""
        return sum(self.writes.values()) / max(1, len(self.epochs))

    @property
    def writes_per_step(self) -> dict:
        """Mean device writes per step, per layer."""
        return {n: v / max(1, self.steps) for n, v in self.writes.items()}

    @property
    def pulses_per_step(self) -> dict:
        """Mean programming pulses per step, per layer."""
        return {n: v / max(1, self.steps) for n, v in self.pulses.items()}

    def to_dict(self) -> dict:
        out = dataclasses.asdict(dataclasses.replace(self, network=None))
        out.pop("network")
        out["writes_per_epoch"] = self.writes_per_epoch
        return out


def train_onchip(
    model,
    arch,
    train_data,
    test_data,
    *,
    input_shape=None,
    rule: str | None = None,
    update: str | None = None,
    threshold: float | None = None,
    lr: float | None = None,
    epochs: int | None = None,
    batch_size: int | None = None,
    seed: int = 0,
    chip_seed: int | None = None,
    progress: bool = False,
    log=None,
    device: str | torch.device | None = "cpu",
) -> OnChipResult:
    """Train ``model`` on chip (see the module docstring); rule, update scheme, threshold,
    learning rate, epochs and batch size default to the spec's ``training`` section.
    ``train_data``/``test_data``: ``(images, labels)`` tensors. Returns the final test accuracy,
    per-epoch records and the device writes counted by the update scheme.

    ``device``: on-chip training runs on the CPU only (the device update models of
    :mod:`pimsim.training._devices` draw their pulses from CPU generators); ``"auto"`` therefore
    means the CPU here, and ``"cuda"`` is refused with a :class:`~pimsim.oracle.DeviceError`."""
    onchip_device(device)
    cfg = arch.training
    lr = cfg.lr if lr is None else lr
    epochs = cfg.epochs if epochs is None else epochs
    batch_size = batch_size or cfg.batch_size
    x, y = train_data
    input_shape = input_shape or (1, *x.shape[1:])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        net = OnChipNetwork(model, arch, input_shape, rule, update, threshold, seed, chip_seed)
    order_gen = torch.Generator().manual_seed(seed + 7919)
    records = []
    steps = 0
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=epochs * ((len(x) + batch_size - 1) // batch_size), unit="step",
                   desc=f"{net.rule}/{net.update}")
    diverged = False
    for epoch in range(epochs):
        if diverged:
            break
        start = time.perf_counter()
        before_w, before_p = sum(net.writes().values()), sum(net.pulses().values())
        order = torch.randperm(len(x), generator=order_gen)
        losses = []
        for i in range(0, len(x), batch_size):
            idx = order[i : i + batch_size]
            losses.append(net.step(x[idx], y[idx], lr))
            steps += 1
            if bar is not None:
                bar.update(1)
            if not math.isfinite(losses[-1]):
                diverged = True
                warnings.warn(f"on-chip training diverged (loss {losses[-1]}) at epoch "
                              f"{epoch + 1}, step {steps}: stopped; try a smaller learning rate",
                              stacklevel=2)
                break
        acc = net.accuracy(*test_data)
        rec = {
            "epoch": epoch + 1,
            "loss": sum(losses) / len(losses),
            "accuracy": acc,
            "writes": sum(net.writes().values()) - before_w,
            "pulses": sum(net.pulses().values()) - before_p,
            "seconds": time.perf_counter() - start,
        }
        records.append(rec)
        if log is not None:
            log(rec)
    if bar is not None:
        bar.close()
    return OnChipResult(
        rule=net.rule,
        update=net.update,
        threshold=net.threshold,
        accuracy=records[-1]["accuracy"] if records else net.accuracy(*test_data),
        epochs=records,
        writes=net.writes(),
        pulses=net.pulses(),
        steps=steps,
        samples_per_epoch=len(x),
        batch_size=batch_size,
        conversions=net.conversions(),
        network=net,
    )


def onchip_device(device: str | torch.device | None) -> torch.device:
    """The device on-chip training runs on for ``device``: the CPU (also for ``"auto"``);
    raises :class:`~pimsim.oracle.DeviceError` for any other (after the checks of
    :func:`~pimsim.oracle.resolve_device`)."""
    from pimsim.oracle._device import DeviceError, resolve_device

    if isinstance(device, str) and device.strip().lower() == "auto":
        return torch.device("cpu")
    dev = resolve_device(device)
    if dev.type != "cpu":
        raise DeviceError(
            f"device {str(device)!r}: on-chip training (--rule) runs on the CPU only (its "
            "device update models draw their pulses from CPU generators); use --device cpu or "
            "auto"
        )
    return dev


def train_float_sgd(model, train_data, test_data, *, lr, epochs, batch_size, seed=0) -> dict:
    """The reference: exact float SGD (no PIM anywhere) with the same batches, learning rate
    and epochs as :func:`train_onchip`; returns ``{"accuracy", "epochs"}``."""
    model = copy.deepcopy(model)
    x, y = train_data
    xt, yt = test_data
    order_gen = torch.Generator().manual_seed(seed + 7919)
    records = []
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(x), generator=order_gen)
        for i in range(0, len(x), batch_size):
            idx = order[i : i + batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            model.zero_grad()
            loss.backward()
            with torch.no_grad():
                for p in model.parameters():
                    if p.grad is not None:
                        p -= lr * p.grad
        model.eval()
        with torch.no_grad():
            acc = float((model(xt).argmax(1) == yt).float().mean())
        records.append({"epoch": epoch + 1, "accuracy": acc})
    return {"accuracy": records[-1]["accuracy"], "epochs": records, "model": model}
