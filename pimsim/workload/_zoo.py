"""Built-in zoo of small torch networks used by the examples and benchmarks.

Module and layer names are an interface: hand-written workload YAML files describe the same
networks and must produce identical layer names when traced with
:func:`pimsim.workload._torch.from_torch`. Every ``forward`` therefore calls each child module
exactly once, in declaration order, and residual sums are written with ``+`` so that they trace as
``<block>.add``.

This module imports torch at import time; callers import it lazily.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable

import torch
from torch import nn

from pimsim.errors import WorkloadError, did_you_mean
from pimsim.workload._zoo_modern import (
    BertTiny,
    EfficientNetB0,
    LSTMClassifier,
    MobileNetV3Small,
    ViTTiny,
)

# --------------------------------------------------------------------------- small networks


class DeepMLP(nn.Sequential):
    """Perceptron for 28x28 MNIST with ``hidden`` ReLU layers (default three of 256:
    784-256-256-256-10), named ``fc1..fcN`` and ``relu1..``; the learning-rule experiments vary
    its depth."""

    def __init__(self, num_classes: int = 10, hidden: tuple[int, ...] = (256, 256, 256)) -> None:
        layers: OrderedDict = OrderedDict(flatten=nn.Flatten())
        width = 784
        for i, h in enumerate(hidden, start=1):
            layers[f"fc{i}"] = nn.Linear(width, h, bias=True)
            layers[f"relu{i}"] = nn.ReLU()
            width = h
        layers[f"fc{len(hidden) + 1}"] = nn.Linear(width, num_classes, bias=True)
        super().__init__(layers)


class MLP(DeepMLP):
    """Three-layer perceptron for 28x28 MNIST (784-256-128-10, ReLU)."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__(num_classes, hidden=(256, 128))


def _lenet5(num_classes: int, batchnorm: bool) -> OrderedDict:
    """LeNet-5's layers; with ``batchnorm``, a BatchNorm after each (bias-free) convolution."""
    layers: OrderedDict = OrderedDict()
    for i, (cin, cout, pad) in enumerate(((1, 6, 2), (6, 16, 0)), start=1):
        layers[f"conv{i}"] = nn.Conv2d(cin, cout, 5, padding=pad, bias=not batchnorm)
        if batchnorm:
            layers[f"bn{i}"] = nn.BatchNorm2d(cout)
        layers[f"relu{i}"] = nn.ReLU()
        layers[f"pool{i}"] = nn.MaxPool2d(2)
    layers["flatten"] = nn.Flatten()
    layers["fc1"] = nn.Linear(400, 120, bias=True)
    layers["relu3"] = nn.ReLU()
    layers["fc2"] = nn.Linear(120, 84, bias=True)
    layers["relu4"] = nn.ReLU()
    layers["fc3"] = nn.Linear(84, num_classes, bias=True)
    return layers


class LeNet5(nn.Sequential):
    """LeNet-5 for 28x28 MNIST (first conv padded to keep 28x28, max pooling, ReLU)."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__(_lenet5(num_classes, batchnorm=False))


class LeNet5BN(nn.Sequential):
    """LeNet-5 with batch normalisation after each convolution (conv, BN, ReLU, pool): the
    small network with BatchNorm that BN calibration needs."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__(_lenet5(num_classes, batchnorm=True))


class VGG8(nn.Sequential):
    """The VGG-8 of DNN+NeuroSim for 32x32 CIFAR-10: six 3x3 convs, two FC layers, no BN/bias."""

    def __init__(self, num_classes: int = 10) -> None:
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        # (out_channels, pool after this conv?) per conv; the input has 3 channels.
        plan = [(128, False), (128, True), (256, False), (256, True), (512, False), (512, True)]
        cin, pools = 3, 0
        for i, (cout, pool_after) in enumerate(plan, start=1):
            layers[f"conv{i}"] = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
            layers[f"relu{i}"] = nn.ReLU()
            if pool_after:
                pools += 1
                layers[f"pool{pools}"] = nn.MaxPool2d(2)
            cin = cout
        layers["flatten"] = nn.Flatten()
        layers["fc1"] = nn.Linear(512 * 4 * 4, 1024, bias=False)
        layers["relu7"] = nn.ReLU()
        layers["fc2"] = nn.Linear(1024, num_classes, bias=False)
        super().__init__(layers)


# --------------------------------------------------------------------------- ResNets


class BasicBlock(nn.Module):
    """ResNet basic block: two 3x3 convs with BN, a 1x1 projection shortcut when the shape
    changes, ``out + identity`` and a final ReLU."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.downsample = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``relu2(bn2(conv2(relu1(bn1(conv1(x))))) + shortcut(x))``."""
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        # The shortcut runs after the main path so layers appear in the documented order.
        identity = x if self.downsample is None else self.downsample(x)
        out = out + identity
        return self.relu2(out)


def _stage(cin: int, cout: int, blocks: int, stride: int) -> nn.Sequential:
    layers = [BasicBlock(cin, cout, stride)]
    layers += [BasicBlock(cout, cout) for _ in range(blocks - 1)]
    return nn.Sequential(*layers)


class ResNet(nn.Sequential):
    """A ResNet of basic blocks: the CIFAR variant (3x3 stem, no max pool) when ``imagenet`` is
    false, else the ImageNet variant (7x7 stride-2 stem and 3x3 max pool)."""

    def __init__(
        self,
        blocks: tuple[int, ...],
        channels: tuple[int, ...],
        num_classes: int,
        imagenet: bool,
    ) -> None:
        layers: OrderedDict[str, nn.Module] = OrderedDict()
        c0 = channels[0]
        if imagenet:
            layers["conv1"] = nn.Conv2d(3, c0, 7, stride=2, padding=3, bias=False)
        else:
            layers["conv1"] = nn.Conv2d(3, c0, 3, padding=1, bias=False)
        layers["bn1"] = nn.BatchNorm2d(c0)
        layers["relu"] = nn.ReLU()
        if imagenet:
            layers["maxpool"] = nn.MaxPool2d(3, stride=2, padding=1)
        cin = c0
        for i, (n, cout) in enumerate(zip(blocks, channels, strict=True), start=1):
            layers[f"layer{i}"] = _stage(cin, cout, n, 1 if i == 1 else 2)
            cin = cout
        layers["avgpool"] = nn.AdaptiveAvgPool2d(1)
        layers["flatten"] = nn.Flatten()
        layers["fc"] = nn.Linear(cin, num_classes, bias=True)
        super().__init__(layers)


def resnet20(num_classes: int = 10) -> ResNet:
    """ResNet-20 for 32x32 CIFAR-10 (3 stages of 3 blocks, 16/32/64 channels)."""
    return ResNet((3, 3, 3), (16, 32, 64), num_classes, imagenet=False)


def resnet18(num_classes: int = 1000) -> ResNet:
    """ResNet-18 for 224x224 ImageNet (4 stages of 2 blocks, 64..512 channels)."""
    return ResNet((2, 2, 2, 2), (64, 128, 256, 512), num_classes, imagenet=True)


# --------------------------------------------------------------------------- MobileNetV2

#: (expansion t, output channels c, repeats n, first stride s) per stage of MobileNetV2.
MOBILENETV2_STAGES = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def _divisible(value: float, divisor: int = 8) -> int:
    """Round a scaled channel count to a multiple of ``divisor`` without losing more than 10%
    (the rule of the MobileNetV2 paper's width multiplier)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _conv_bn_act(cin: int, cout: int, kernel: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(cin, cout, kernel, stride=stride, padding=kernel // 2, bias=False),
            bn=nn.BatchNorm2d(cout),
            act=nn.ReLU6(),
        )
    )


class InvertedResidual(nn.Module):
    """MobileNetV2 block: optional 1x1 expansion, 3x3 depthwise conv, linear 1x1 projection, and
    ``x + out`` when the stride is 1 and the channel count is unchanged."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = cin * expand
        self.expand = expand != 1
        if self.expand:
            self.expand_conv = nn.Conv2d(cin, hidden, 1, bias=False)
            self.expand_bn = nn.BatchNorm2d(hidden)
            self.expand_act = nn.ReLU6()
        self.dw_conv = nn.Conv2d(
            hidden, hidden, 3, stride=stride, padding=1, groups=hidden, bias=False
        )
        self.dw_bn = nn.BatchNorm2d(hidden)
        self.dw_act = nn.ReLU6()
        self.project_conv = nn.Conv2d(hidden, cout, 1, bias=False)
        self.project_bn = nn.BatchNorm2d(cout)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Expand, depthwise, project, then add the input back when shapes allow."""
        out = x
        if self.expand:
            out = self.expand_act(self.expand_bn(self.expand_conv(out)))
        out = self.dw_act(self.dw_bn(self.dw_conv(out)))
        out = self.project_bn(self.project_conv(out))
        if self.residual:
            out = x + out
        return out


class MobileNetV2(nn.Sequential):
    """MobileNetV2 for 224x224 ImageNet: ``stem``, 17 inverted residual ``blocks``, ``head``,
    global average pool, dropout and a linear ``classifier``."""

    def __init__(
        self, num_classes: int = 1000, width_mult: float = 1.0, dropout: float = 0.2
    ) -> None:
        cin = _divisible(32 * width_mult)
        last = _divisible(1280 * max(1.0, width_mult))
        blocks = []
        for t, c, n, s in MOBILENETV2_STAGES:
            cout = _divisible(c * width_mult)
            for i in range(n):
                blocks.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        super().__init__(
            OrderedDict(
                stem=_conv_bn_act(3, _divisible(32 * width_mult), 3, stride=2),
                blocks=nn.Sequential(*blocks),
                head=_conv_bn_act(cin, last, 1),
                avgpool=nn.AdaptiveAvgPool2d(1),
                flatten=nn.Flatten(),
                dropout=nn.Dropout(dropout),
                classifier=nn.Linear(last, num_classes, bias=True),
            )
        )


# --------------------------------------------------------------------------- registry

#: Zoo name -> (constructor, input shape without the batch dimension).
ZOO: dict[str, tuple[Callable[..., nn.Module], tuple[int, ...]]] = {
    "mlp_mnist": (MLP, (1, 28, 28)),
    "mlp4_mnist": (DeepMLP, (1, 28, 28)),
    "lenet5_mnist": (LeNet5, (1, 28, 28)),
    "lenet5_bn_mnist": (LeNet5BN, (1, 28, 28)),
    "vgg8_cifar10": (VGG8, (3, 32, 32)),
    "resnet20_cifar10": (resnet20, (3, 32, 32)),
    "resnet18_imagenet": (resnet18, (3, 224, 224)),
    "mobilenetv2_imagenet": (MobileNetV2, (3, 224, 224)),
    "vit_tiny_cifar10": (ViTTiny, (3, 32, 32)),
    "bert_tiny": (BertTiny, (64,)),
    "lstm_mnist": (LSTMClassifier, (1, 28, 28)),
    "mobilenetv3_small_imagenet": (MobileNetV3Small, (3, 224, 224)),
    "efficientnet_b0_imagenet": (EfficientNetB0, (3, 224, 224)),
}


def _factory(spec: str) -> tuple[Callable[..., nn.Module], tuple[int, ...] | None]:
    """``package.module:factory[:d1,d2,...]`` -> (the factory, the input shape it gives or the
    factory's ``input_shape`` attribute, or None)."""
    import importlib

    module_name, _, rest = spec.partition(":")
    factory_name, _, shape_text = rest.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), factory_name)
    except (ImportError, AttributeError, ValueError) as exc:
        raise WorkloadError(
            f"model {spec!r}: cannot import {factory_name!r} from {module_name!r}: {exc}"
        ) from exc
    shape = getattr(factory, "input_shape", None)
    if shape_text:
        try:
            shape = tuple(int(d) for d in shape_text.split(","))
        except ValueError as exc:
            raise WorkloadError(
                f"model {spec!r}: the input shape must be integers separated by commas, e.g. "
                f"{module_name}:{factory_name}:3,32,32"
            ) from exc
    return factory, (tuple(shape) if shape is not None else None)


def is_model_spec(name: str) -> bool:
    """Whether ``name`` names a torch model by ``package.module:factory[:shape]``."""
    return ":" in name and name not in ZOO


def input_shape_of(name: str) -> tuple[int, ...]:
    """Input shape (batch excluded) of a zoo network or a ``package.module:factory:shape``."""
    if name in ZOO:
        return ZOO[name][1]
    if is_model_spec(name):
        shape = _factory(name)[1]
        if shape is not None:
            return shape
        raise WorkloadError(
            f"model {name!r}: give the input shape without the batch, e.g. {name}:3,32,32"
        )
    return ZOO[zoo_key(name)][1]


def zoo_key(name: str) -> str:
    """``name`` if it is a zoo network, else a WorkloadError naming the close ones."""
    if name not in ZOO:
        hint = did_you_mean(name, ZOO)
        raise WorkloadError(f"unknown zoo network {name!r}{hint} (known: {', '.join(ZOO)})")
    return name


def traced_workload(name: str, input_shape: tuple[int, ...] | None = None):
    """The workload of a zoo network or a ``package.module:factory[:shape]`` model, traced with
    :func:`~pimsim.workload.from_torch` on ``input_shape`` (default: its own)."""
    from pimsim.workload._torch import from_torch

    shape = tuple(input_shape) if input_shape else input_shape_of(name)
    label = name.split(":")[1] if is_model_spec(name) else name
    return from_torch(zoo_model(name), (1, *shape), name=label)


def zoo_model(name: str, **kwargs) -> nn.Module:
    """A freshly initialised zoo network, or the model ``factory(**kwargs)`` of a
    ``package.module:factory[:shape]`` name; ``kwargs`` go to its constructor (e.g.
    ``num_classes``). Unknown names raise :class:`~pimsim.errors.WorkloadError`."""
    if is_model_spec(name):
        factory = _factory(name)[0]
        try:
            model = factory(**kwargs)
        except TypeError as exc:
            raise WorkloadError(f"model {name!r}: {exc}") from exc
        if not isinstance(model, nn.Module):
            raise WorkloadError(
                f"model {name!r}: the factory returned {type(model).__name__}, not an nn.Module"
            )
        return model
    if name not in ZOO:
        hint = did_you_mean(name, ZOO)
        raise WorkloadError(f"unknown zoo network {name!r}{hint} (known: {', '.join(ZOO)})")
    ctor, _ = ZOO[name]
    try:
        return ctor(**kwargs)
    except TypeError as exc:
        # Bad keyword arguments are a user error, not a crash.
        raise WorkloadError(f"zoo network {name!r}: {exc}") from exc
