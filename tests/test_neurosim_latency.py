"""Event-driven latency against three runs of unmodified DNN+NeuroSim V1.4 (VGG-8/CIFAR-10):
FPS within 30% and per-layer latency within 50% on the dominant layers (README, Dataflow)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "neurosim_vgg8"

pytestmark = pytest.mark.skipif(
    not (DATA / "runs.csv").exists(), reason=f"NeuroSim reference runs not found at {DATA}"
)


def _experiment():
    spec = importlib.util.spec_from_file_location(
        "neurosim_vgg8_latency", ROOT / "experiments" / "neurosim_vgg8_latency.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_fps_and_dominant_layers_agree_with_neurosim():
    runs, layers = _experiment().compare(DATA)
    assert len(runs) == 3
    assert ((runs.fps_ratio > 0.7) & (runs.fps_ratio < 1.3)).all(), runs[["name", "fps_ratio"]]
    dominant = layers[layers.dominant]
    assert len(dominant) >= 9  # conv1-conv4 of each configuration
    assert ((dominant.ratio > 0.5) & (dominant.ratio < 1.5)).all(), dominant[["layer", "ratio"]]
