"""Training: conventional QAT, PIM-aware training (PIM-QAT, adjusted precision,
variability-aware training), per-chip BN calibration and self-tuning, on-chip training with a
learning rule (backprop, direct feedback alignment) and device update models (exact, pulsed,
mixed precision), datasets and checkpoints.

Training wraps the oracle's PIM layers (:mod:`pimsim.oracle`): the forward value of a PIM-QAT
layer is the oracle's own computation, never a copy of it. Imports torch.
"""

from pimsim.training._checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from pimsim.training._data import load_cifar, load_dataset, load_mnist
from pimsim.training._devices import DeviceWeights, apply_pulses
from pimsim.training._pimqat import (
    PimQatConv2d,
    PimQatLinear,
    PimQatOptions,
    attach_pim,
    calibrate_output_scales,
    deployment_options,
    detach_pim,
    draw_training_chip,
    rescaling,
    training_arch,
)
from pimsim.training._qat import QuantConv2d, QuantLinear, quant_layers, quantize_model
from pimsim.training._rules import (
    OnChipNetwork,
    OnChipResult,
    train_float_sgd,
    train_onchip,
)
from pimsim.training._train import RECIPES, evaluate_accuracy, train, train_model
from pimsim.training._tuning import (
    bn_calibrate,
    calibrate_bn_for_chip,
    chip_tuning,
    layer_statistics,
    self_tune,
    untune,
)

__all__ = [
    "DeviceWeights",
    "OnChipNetwork",
    "OnChipResult",
    "apply_pulses",
    "train_float_sgd",
    "train_onchip",
    "RECIPES",
    "CheckpointError",
    "PimQatConv2d",
    "PimQatLinear",
    "PimQatOptions",
    "QuantConv2d",
    "QuantLinear",
    "attach_pim",
    "bn_calibrate",
    "calibrate_bn_for_chip",
    "calibrate_output_scales",
    "chip_tuning",
    "deployment_options",
    "detach_pim",
    "draw_training_chip",
    "evaluate_accuracy",
    "layer_statistics",
    "load_checkpoint",
    "load_cifar",
    "load_dataset",
    "load_mnist",
    "quant_layers",
    "quantize_model",
    "rescaling",
    "save_checkpoint",
    "self_tune",
    "train",
    "train_model",
    "training_arch",
    "untune",
]
