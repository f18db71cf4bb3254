"""``--device cpu|cuda|auto``: the resolver, the exactness context, the device path of the oracle
and training, the commands' option, and (where a GPU is visible) CPU against CUDA."""

import copy
import json
import warnings
from pathlib import Path

import pytest
import torch

import pimsim
import pimsim.oracle as oracle
from pimsim.errors import PimsimError
from pimsim.oracle import DeviceError, cuda_exactness, resolve_device
from pimsim.spec import preset_overrides
from pimsim.training import load_mnist, train_model, train_onchip
from pimsim.training._rules import onchip_device
from pimsim.training._train import build_model
from tests.conftest import SMALL_ARCH

CUDA = torch.cuda.is_available()
needs_cuda = pytest.mark.skipif(
    not CUDA, reason="no CUDA device visible (torch.cuda.is_available() is False): the CPU "
    "against CUDA comparisons need a GPU"
)
PRESETS = ("native", "differential", "bit_serial")
NO_GPU = "no CUDA device is visible"


@pytest.fixture
def no_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)


@pytest.fixture
def one_gpu(monkeypatch):
    """torch claims one GPU (nothing runs on it: only the resolver's checks are exercised)."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)


# --------------------------------------------------------------------------- resolver


@pytest.mark.parametrize("name", [None, "cpu", "CPU", " cpu ", torch.device("cpu"), "cpu:0"])
def test_cpu_names(name):
    if name == "cpu:0":  # a string torch reads, but not one of ours
        with pytest.raises(DeviceError, match="unknown device 'cpu:0'"):
            resolve_device(name)
        return
    assert resolve_device(name) == torch.device("cpu")


def test_auto_takes_a_gpu_only_where_there_is_one(no_gpu):
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device("AUTO") == torch.device("cpu")


def test_auto_and_cuda_with_a_gpu(one_gpu):
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cuda") == torch.device("cuda")
    assert resolve_device("cuda:0") == torch.device("cuda", 0)
    with pytest.raises(DeviceError, match=r"sees 1 CUDA device\(s\), cuda:0 to cuda:0"):
        resolve_device("cuda:3")


@pytest.mark.parametrize("name", ["gpu", "cuda:x", "mps", "", "cuda0", "cuda:-1"])
def test_unknown_names_are_one_clean_error(name):
    with pytest.raises(DeviceError) as info:
        resolve_device(name)
    message = str(info.value)
    assert f"unknown device {name!r}" in message
    assert all(word in message for word in ("cpu", "cuda", "cuda:N", "auto"))
    assert isinstance(info.value, PimsimError) and isinstance(info.value, ValueError)


def test_a_torch_device_of_another_kind_is_refused():
    with pytest.raises(DeviceError, match="'meta' is not supported"):
        resolve_device(torch.device("meta"))


@pytest.mark.parametrize("name", ["cuda", "cuda:0", torch.device("cuda")])
def test_cuda_without_a_gpu(no_gpu, name):
    with pytest.raises(DeviceError) as info:
        resolve_device(name)
    message = str(info.value)
    assert NO_GPU in message and "--device cpu" in message and "auto" in message


def test_onchip_training_runs_on_the_cpu(one_gpu):
    assert onchip_device("auto") == torch.device("cpu")
    assert onchip_device("cpu") == torch.device("cpu")
    with pytest.raises(DeviceError, match="on-chip training .* CPU only"):
        onchip_device("cuda")


# --------------------------------------------------------------------------- exactness


def _tf32_state():
    return (
        torch.backends.cuda.matmul.fp32_precision,
        torch.backends.cudnn.conv.fp32_precision,
        torch.backends.cudnn.rnn.fp32_precision,
    )


def test_cuda_exactness_turns_tf32_off_and_restores_it():
    before = _tf32_state()
    try:
        torch.backends.cuda.matmul.fp32_precision = "tf32"
        torch.backends.cudnn.conv.fp32_precision = "tf32"
        torch.backends.cudnn.rnn.fp32_precision = "tf32"
        with cuda_exactness("cuda"):
            assert _tf32_state() == ("ieee", "ieee", "ieee")
            assert not torch.backends.cuda.matmul.allow_tf32
            with cuda_exactness(torch.device("cuda", 0)):  # nests
                assert _tf32_state() == ("ieee", "ieee", "ieee")
            assert _tf32_state() == ("ieee", "ieee", "ieee")
        assert _tf32_state() == ("tf32", "tf32", "tf32")
        with pytest.raises(RuntimeError, match="boom"), cuda_exactness("cuda"):
            raise RuntimeError("boom")
        assert _tf32_state() == ("tf32", "tf32", "tf32")  # restored after an error too
        for device in ("cpu", None, torch.device("cpu")):  # nothing changes off CUDA
            with cuda_exactness(device):
                assert _tf32_state() == ("tf32", "tf32", "tf32")
    finally:
        (
            torch.backends.cuda.matmul.fp32_precision,
            torch.backends.cudnn.conv.fp32_precision,
            torch.backends.cudnn.rnn.fp32_precision,
        ) = before


# --------------------------------------------------------------------------- the device path


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    path = tmp_path_factory.mktemp("arch") / "small.yaml"
    path.write_text(SMALL_ARCH)
    return path


def _arch(path, preset, **extra):
    return pimsim.load_arch(
        path, {**preset_overrides(preset, 4, 4), "adc.bits": 4, "array.rows_per_adc_read": 16,
               **extra},
    )  # fmt: skip


@pytest.fixture(scope="module")
def mnist():
    x, y = load_mnist(split="test")
    return (x[:32], y[:32]), load_mnist(split="train")[0][:32]


@pytest.mark.parametrize("preset", PRESETS)
def test_device_path_on_the_cpu_gives_the_cpu_results(small, mnist, preset):
    """accuracy() off the CPU converts on the CPU, moves the model and draws every chip (cells,
    ADC ranges from the calibration batches) on the device: run on the CPU, that path must give
    exactly the plain path's chips (a learned ADC range and device variation, two chips)."""
    from pimsim.oracle._accuracy import _accuracy_on

    (x, y), x_cal = mnist
    x, y, x_cal = x[:16], y[:16], x_cal[:16]
    arch = _arch(small, preset, **{"adc.range": "learned", "cell.variation.within_chip": 0.1})
    model = build_model("mlp_mnist", "float", seed=0)
    batches = [(x[:8], y[:8]), (x[8:], y[8:])]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plain = oracle.accuracy(model, arch, batches, n_chips=2, seed=3, calibration=[x_cal])
        moved = _accuracy_on(torch.device("cpu"), model, arch, batches, (1, 1, 28, 28), 2, 3,
                             [x_cal], None, None, False, None)  # fmt: skip
        again = oracle.accuracy(model, arch, batches, seed=3, calibration=[x_cal], device="cpu")
    assert moved.per_chip == plain.per_chip and again.per_chip == plain.per_chip[:1]
    assert moved.conversions == plain.conversions and sum(plain.conversions.values()) > 0
    assert moved.adc_ranges == plain.adc_ranges and moved.signed_layers == plain.signed_layers
    assert all(0 < r <= 1 for r in plain.adc_ranges.values())


def test_accuracy_refuses_a_missing_gpu_before_any_work(no_gpu, small, mnist):
    (x, y), _ = mnist
    with pytest.raises(DeviceError, match=NO_GPU):
        oracle.accuracy(build_model("mlp_mnist"), _arch(small, "native"), [(x, y)],
                        device="cuda")  # fmt: skip


def test_train_model_device_cpu_and_auto_are_the_default(no_gpu, mnist):
    (x, y), _ = mnist
    x, y = torch.cat([x, x]), torch.cat([y, y])
    runs = []
    for device in ({}, {"device": "cpu"}, {"device": "auto"}, {"device": torch.device("cpu")}):
        model = build_model("mlp_mnist", "qat", seed=1, weight_bits=4, input_bits=4)
        trained, metrics = train_model(model, (x, y), (x, y), method="qat", epochs=1,
                                       batch_size=16, shift=1, progress=False, **device)
        runs.append((trained, metrics))
    (first, m0), *others = runs
    assert m0["test_accuracy"] is not None and "device" not in m0
    for trained, metrics in others:
        assert metrics["epoch_losses"] == m0["epoch_losses"]
        assert metrics["test_accuracy"] == m0["test_accuracy"]
        for (name, p), q in zip(first.state_dict().items(), trained.state_dict().values(),
                                strict=True):
            assert torch.equal(p, q), name
    with pytest.raises(DeviceError, match=NO_GPU):
        train_model(build_model("mlp_mnist"), (x, y), device="cuda", progress=False)


def test_train_onchip_refuses_cuda(one_gpu, mnist):
    (x, y), _ = mnist
    arch = pimsim.load_arch("arch_specs/rram_onchip_22nm.yaml")
    with pytest.raises(DeviceError, match="CPU only"):
        train_onchip(build_model("mlp_mnist"), arch, (x, y), (x, y), epochs=1, device="cuda")


# --------------------------------------------------------------------------- the commands

ROOT = Path(__file__).resolve().parents[1]
ISAAC = str(ROOT / "arch_specs" / "isaac.yaml")


def cli(*args):
    """The command line in this process (``CliRunner``): exit code, stdout, stderr."""
    from click.testing import CliRunner

    from pimsim.cli import main

    result = CliRunner().invoke(main, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


TRAIN = ("train", ISAAC, "mlp_mnist", "--method", "qat", "--epochs", "1", "--train-samples",
         "256")  # fmt: skip


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """An MLP trained with QAT for one epoch on 256 images, from the command line."""
    path = tmp_path_factory.mktemp("ckpt") / "mlp.pt"
    run = cli(*TRAIN, "--checkpoint", path)
    assert run.exit_code == 0, run.output
    return path


ACCURACY = ("accuracy", ISAAC, "mlp_mnist", "--limit", "100", "--chips", "2", "--calibration",
            "64", "--format", "json", "--set", "cell.variation.within_chip=0.05")  # fmt: skip


def test_cli_accuracy_device_cpu_is_the_default(checkpoint):
    plain = cli(*ACCURACY, "--checkpoint", checkpoint)
    on_cpu = cli(*ACCURACY, "--checkpoint", checkpoint, "--device", "cpu")
    assert plain.exit_code == 0, plain.output
    assert on_cpu.exit_code == 0, on_cpu.output
    assert json.loads(on_cpu.stdout) == json.loads(plain.stdout)
    assert "device" not in json.loads(plain.stdout)
    assert len(json.loads(plain.stdout)["per_chip"]) == 2


def test_cli_train_device_cpu_is_the_default(checkpoint, tmp_path):
    from pimsim.training import load_checkpoint

    again = tmp_path / "again.pt"
    run = cli(*TRAIN, "--checkpoint", again, "--device", "cpu")
    assert run.exit_code == 0, run.output
    (first, meta), (second, meta2) = load_checkpoint(checkpoint), load_checkpoint(again)
    assert meta["accuracy"] == meta2["accuracy"]
    for (name, p), q in zip(first.state_dict().items(), second.state_dict().values(),
                            strict=True):
        assert torch.equal(p, q), name


def test_cli_cuda_without_a_gpu_is_one_clean_error(no_gpu, checkpoint, tmp_path):
    for args in (
        (*ACCURACY, "--checkpoint", checkpoint, "--device", "cuda"),
        (*TRAIN, "--checkpoint", tmp_path / "x.pt", "--device", "cuda"),
        (*TRAIN, "--checkpoint", tmp_path / "x.pt", "--device", "cuda:1"),
        ("train", ROOT / "arch_specs" / "rram_onchip_22nm.yaml", "mlp_mnist", "--rule", "dfa",
         "--device", "cuda"),
    ):
        run = cli(*args)
        assert run.exit_code == 2, run.output
        assert NO_GPU in run.stderr and "--device cpu" in run.stderr
        assert not run.stdout and not (tmp_path / "x.pt").exists()
    bad = cli(*ACCURACY, "--checkpoint", checkpoint, "--device", "gpu")
    assert bad.exit_code == 2 and "unknown device 'gpu'" in bad.stderr


def test_cli_onchip_training_refuses_a_gpu(one_gpu):
    run = cli("train", ROOT / "arch_specs" / "rram_onchip_22nm.yaml", "mlp_mnist", "--rule",
              "dfa", "--device", "cuda")  # fmt: skip
    assert run.exit_code == 2 and "runs on the CPU only" in run.stderr


SWEEP = """\
kind: sweep
name: device_check
arch: {arch}
workload: mlp_mnist
parameters: {{adc.bits: [6]}}
objectives: [energy_pj:min, accuracy:max]
accuracy: {{checkpoint: {checkpoint}, images: 20, calibration: 20{device}}}
"""


def _sweep_file(tmp_path, checkpoint, device=""):
    path = tmp_path / "sweep.yaml"
    path.write_text(SWEEP.format(arch=ISAAC, checkpoint=checkpoint, device=device))
    return path


def test_sweep_file_device_is_read_checked_and_kept_out_of_the_keys(tmp_path, checkpoint):
    from pimsim.explore._points import KeyMaker
    from pimsim.spec._sweep import load_sweep

    plain = load_sweep(_sweep_file(tmp_path, checkpoint))
    assert plain.accuracy.device == "cpu"
    on_gpu = load_sweep(_sweep_file(tmp_path, checkpoint, ", device: 'cuda:1'"))
    assert on_gpu.accuracy.device == "cuda:1"
    assert on_gpu.accuracy.key() == plain.accuracy.key()
    assert KeyMaker.of(on_gpu).budget == KeyMaker.of(plain).budget
    bad = cli("validate", _sweep_file(tmp_path, checkpoint, ", device: gpu"))
    assert bad.exit_code == 2 and "accuracy.device" in bad.output, bad.output


def test_sweep_on_a_missing_gpu_fails_before_any_design(no_gpu, tmp_path, checkpoint):
    store = tmp_path / "s.sqlite"
    for device, flag in ((", device: cuda", ()), ("", ("--device", "cuda"))):
        run = cli("sweep", _sweep_file(tmp_path, checkpoint, device), "--store", store,
                  "--workers", "0", "--quiet", "--no-plot", *flag)  # fmt: skip
        assert run.exit_code == 2, run.output
        assert NO_GPU in run.stderr
        assert not store.exists()  # no design was evaluated


# --------------------------------------------------------------------------- CPU against CUDA


def _lenet_outputs(arch, device, x):
    """Logits and per-layer ADC code histograms of LeNet-5 (random weights) converted on the
    CPU and run on ``device``."""
    model = build_model("lenet5_mnist", "float", seed=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pim = oracle.convert(model, arch, (1, 1, 28, 28), calibration=[x]).to(device)
    oracle.record_codes(pim)
    with torch.no_grad(), cuda_exactness(device):
        logits = pim(x.to(device)).cpu()
    return logits, oracle.code_histograms(pim), oracle.counts(pim)


@needs_cuda
@pytest.mark.parametrize("preset", PRESETS)
def test_oracle_cpu_and_cuda_agree_bit_for_bit(small, mnist, preset):
    (x, y), x_cal = mnist
    arch = _arch(small, preset, **{"adc.range": "full_scale"})
    cpu = _lenet_outputs(arch, "cpu", x)
    gpu = _lenet_outputs(arch, "cuda", x)
    assert torch.equal(cpu[0], gpu[0])  # logits, bit for bit
    assert cpu[1] == gpu[1] and cpu[2] == gpu[2]  # every ADC code, every conversion
    # accuracy() with a learned ADC range set on each chip from calibration batches
    learned = _arch(small, preset, **{"adc.range": "learned"})
    model = build_model("mlp_mnist", "float", seed=0)
    batches = [(x[:16], y[:16]), (x[16:], y[16:])]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        on_cpu = oracle.accuracy(model, learned, batches, calibration=[x_cal], device="cpu")
        on_gpu = oracle.accuracy(model, learned, batches, calibration=[x_cal], device="cuda")
    assert on_gpu.to_dict() == on_cpu.to_dict()


@needs_cuda
@pytest.mark.parametrize("adc_range", ["full_scale", "learned"])
def test_pimqat_steps_on_cpu_and_cuda(small, mnist, adc_range):
    """Four PIM-QAT steps of the MLP from the same start on the same batches. The PIM forward
    is exact on both devices, but the float32 reductions of the gradients (softmax, cuBLAS
    against the CPU's BLAS) round differently, so the weights agree to float32 rounding, not
    bit for bit; deployed on the CPU, the two trained models then compute the same codes."""
    (x, y), _ = mnist
    arch = _arch(small, "differential", **{"adc.range": adc_range})
    start = build_model("mlp_mnist", "qat", seed=2, weight_bits=4, input_bits=4)
    runs = {}
    for device in ("cpu", "cuda"):
        runs[device] = train_model(copy.deepcopy(start), (x, y), method="pimqat", arch=arch,
                                   epochs=1, batch_size=8, shift=0, progress=False,
                                   device=device)  # fmt: skip
    (cpu, m_cpu), (gpu, m_gpu) = runs["cpu"], runs["cuda"]
    assert m_gpu["device"].startswith("cuda") and "device" not in m_cpu
    assert all(t.device.type == "cpu" for t in gpu.state_dict().values())
    assert m_gpu["epoch_losses"][0] == pytest.approx(m_cpu["epoch_losses"][0], rel=1e-4)
    for (name, p), q in zip(cpu.state_dict().items(), gpu.state_dict().values(), strict=True):
        if p.is_floating_point():
            assert torch.allclose(p, q, rtol=1e-4, atol=1e-6), name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        a = oracle.accuracy(cpu, arch, [(x, y)])
        b = oracle.accuracy(gpu, arch, [(x, y)])
    assert a.conversions == b.conversions
