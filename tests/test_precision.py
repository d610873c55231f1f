"""Reduced-precision emulation and the process-wide torch state."""

import math
import struct
import threading

import numpy as np
import pytest
import torch

from explorer import ExperimentConfig, run
from explorer.precision import (
    STATE_LOCK,
    gamma,
    read_backend_flags,
    round_operand,
    round_to_tf32,
    threads_in_effect,
    torch_state,
)


def from_bits(bits: int) -> float:
    return struct.unpack("<f", struct.pack("<I", bits))[0]


def to_bits(value: float) -> int:
    return struct.unpack("<I", struct.pack("<f", value))[0]


@pytest.mark.parametrize("bits, expected", [
    (0x3F800000, 0x3F800000),  # 1.0 stays
    (0x3F800FFF, 0x3F800000),  # below half: down
    (0x3F801000, 0x3F800000),  # exactly half, kept bit even (0): down, ties to even
    (0x3F803000, 0x3F804000),  # exactly half, kept bit odd (1): up, ties to even
    (0x3F801001, 0x3F802000),  # above half: up
    (0xBF801001, 0xBF802000),  # negative mirrors positive
    (0x3FFFF000, 0x40000000),  # carry into the exponent: rounds up to 2.0
    (0x7F7FFFFF, 0x7F800000),  # float32 max rounds to inf in TF32, as RNE does
    (0x00001FFF, 0x00002000),  # subnormal rounds too
])
def test_tf32_rounding_bit_patterns(bits, expected):
    got = round_to_tf32(torch.tensor([from_bits(bits)], dtype=torch.float32))
    assert to_bits(got.item()) == expected


def test_tf32_keeps_inf_and_nan():
    got = round_to_tf32(torch.tensor([math.inf, -math.inf, math.nan]))
    assert got[0] == math.inf and got[1] == -math.inf and math.isnan(got[2])
    # A NaN payload with low bits set must not be rounded into inf.
    payload = from_bits(0x7F800001)
    assert math.isnan(round_to_tf32(torch.tensor([payload])).item())


def _tf32_reference(patterns: np.ndarray) -> np.ndarray:
    """Round-to-nearest-even to 10 explicit mantissa bits in unsigned 64-bit integers,
    inf and NaN kept: the definition, written apart from round_to_tf32's int32 tricks."""
    u = patterns.astype(np.uint32).astype(np.uint64)
    keep = (u & 0x7F800000) == 0x7F800000
    rounded = ((u + 0x0FFF + ((u >> 13) & 1)) & 0xFFFFE000) & 0xFFFFFFFF
    return np.where(keep, u, rounded).astype(np.uint32)


def test_tf32_rounding_matches_the_definition_on_every_kind_of_pattern():
    # Random patterns (both signs, subnormals, inf/NaN payloads) and, for every exponent,
    # the mantissas around each rounding point; a permuted (non-contiguous) input too.
    rng = np.random.default_rng(5)
    random = rng.integers(0, 2**32, 2_000_000, dtype=np.uint64).astype(np.uint32)
    mantissas = np.r_[0:0x40, 0x0FC0:0x1040, 0x1FC0:0x2040, 0x2FC0:0x3040, 0x7FFFC0:0x800000]
    edges = ((np.arange(512, dtype=np.uint64)[:, None] << 23)
             | mantissas.astype(np.uint64)[None, :]).astype(np.uint32).reshape(-1)
    for patterns in (random, edges):
        x = torch.from_numpy(patterns.view(np.int32).copy()).view(torch.float32)
        got = round_to_tf32(x).view(torch.int32).numpy().view(np.uint32)
        assert np.array_equal(got, _tf32_reference(patterns))
    x = torch.from_numpy(random[:60].view(np.int32).copy()).view(torch.float32)
    permuted = x.reshape(3, 4, 5).permute(2, 0, 1)
    expected = _tf32_reference(permuted.contiguous().view(torch.int32).numpy().view(np.uint32))
    got = round_to_tf32(permuted)
    assert got.shape == permuted.shape
    assert np.array_equal(got.contiguous().view(torch.int32).numpy().view(np.uint32).reshape(-1),
                          expected.reshape(-1))


def test_tf32_rejects_other_dtypes():
    with pytest.raises(ValueError, match="takes float32"):
        round_to_tf32(torch.zeros(2, dtype=torch.float64))


def test_round_operand_formats():
    x = torch.tensor([1.0 + 2**-9, 70000.0])
    assert round_operand(x, "bf16")[0].item() == 1.0
    assert round_operand(x, "fp16")[1].item() == math.inf
    assert round_operand(x, "tf32")[0].item() == 1.0 + 2**-9
    with pytest.raises(ValueError, match="emulation='fp8'"):
        round_operand(x, "fp8")


def test_gamma():
    assert gamma(1, 0.5**24) == pytest.approx(2**-24 / (1 - 2**-24))
    assert gamma(300, 2**-8) == math.inf  # k*u >= 1: no bound


def test_state_is_restored_after_an_error():
    before = read_backend_flags()
    with pytest.raises(RuntimeError):
        with torch_state(threads=1, conv_tf32="off", matmul_tf32="on",
                         cudnn_deterministic=True, cudnn_benchmark=True) as inside:
            assert inside["threads"] == 1 and inside["cudnn_deterministic"] is True
            raise RuntimeError("boom")
    assert read_backend_flags() == before
    assert STATE_LOCK.is_free()


def test_shared_runs_overlap_but_exclusive_runs_are_alone():
    import time

    events: list[str] = []
    barrier = threading.Barrier(2)

    def reader(name):
        with STATE_LOCK.shared():
            barrier.wait(timeout=5)  # both readers inside at once, or this times out
            events.append(name)

    readers = [threading.Thread(target=reader, args=(n,)) for n in ("r1", "r2")]
    for t in readers:
        t.start()
    for t in readers:
        t.join()
    assert sorted(events) == ["r1", "r2"]

    inside = []
    writer_holds = threading.Event()

    def writer():
        with STATE_LOCK.exclusive():
            inside.append("w-in")
            writer_holds.set()
            time.sleep(0.05)
            inside.append("w-out")

    def late_reader():
        writer_holds.wait(timeout=5)
        with STATE_LOCK.shared():
            inside.append("r")

    threads = [threading.Thread(target=writer), threading.Thread(target=late_reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert inside == ["w-in", "w-out", "r"]
    assert STATE_LOCK.is_free()


def test_run_that_raised_restores_state(monkeypatch):
    import explorer.compare as compare

    before = read_backend_flags()

    def explode(*args, **kwargs):
        raise RuntimeError("kernel failed")

    monkeypatch.setattr(compare, "_tap_metrics", explode)
    with pytest.raises(RuntimeError, match="kernel failed"):
        run(ExperimentConfig(threads=1))
    assert read_backend_flags() == before


def test_two_threads_with_conflicting_settings_match_sequential_runs():
    configs = [ExperimentConfig(threads=1, activation="tanh", init_scheme="torch_default"),
               ExperimentConfig(threads=2, activation="elu", emulate_b="tf32"),
               ExperimentConfig(activation="sigmoid")] * 4
    sequential = [run(c) for c in configs]
    results: dict[int, object] = {}
    errors: list[BaseException] = []

    def worker(i, config):
        try:
            results[i] = run(config)
        except BaseException as err:  # surfaced below
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(i, c)) for i, c in enumerate(configs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    for i, expected in enumerate(sequential):
        got = results[i]
        assert got.taps == expected.taps
        # threads=0 is the process default, whatever the worker thread had before.
        assert got.environment["threads"] == threads_in_effect(configs[i].threads)
    assert torch.get_num_threads() == read_backend_flags()["threads"]
