"""The honest floor: the least work the comparison method itself needs, and nothing else.

    python benchmarks/floor.py --preset seed            # prints seconds (median of repeats)
    python benchmarks/floor.py --preset realistic --depth 8 --widths 1024,1024,1024,1024,\
1024,1024,1024,1024 --batch 4096 --samples 1

A full comparison (``explorer.compare.run``) cannot be cheaper than this, whatever its
metrics cost. Per affine layer it does exactly:

1. A's layer and B's layer, each on its own network's input, in the compute dtype, each
   implementation on its native layout (the three forwards' A and B);
2. the float64 referee's layer (the third forward), and the activations of all three;
3. B's layer fed A's input (the *local* difference needs it; the first layer's is B's own);
4. |x||W|^T + |b| for the rounding bound (x = A's input), in float64 (``--bound-arithmetic
   float32`` shows what a float32 addmm would save);
5. for the per-side bound ratios (issue 9/11): each side's exact float64 result for its own
   input, W x_A + b and W x_B + b, and |x_B||W|^T + |b| (at layer 1 both inputs are x and
   the referee's own result serves);
6. one read of each array a tap's metrics read: A, B and the reference at every tap, and at
   pre taps also local B, |W||x_A|+|b|, the two exact results and |W||x_B|+|b| (a max over
   each, in its own layout).

The per-side items were added to the method after issue 13 defined the floor; without them
(``--no-sides``) this is the floor as issue 13 measured it.

Building the networks and drawing the parameters and input are included, as in a run.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "src") not in sys.path:
    sys.path.insert(0, str(ROOT / "src"))  # run from a checkout without installing

import torch  # noqa: E402

from explorer.config import ExperimentConfig, preset  # noqa: E402
from explorer.devices import resolve_device  # noqa: E402
from explorer.models import (  # noqa: E402
    Network,
    from_native,
    make_input_and_parameters,
    to_native,
)
from explorer.precision import TORCH_DTYPES  # noqa: E402
from explorer.reference import Referee  # noqa: E402


def _read(t: torch.Tensor) -> None:
    """One pass over an array (a max), in whatever layout it has."""
    t.amax()


def _magnitude(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, dtype: torch.dtype,
               bound_arithmetic: str) -> torch.Tensor:
    if bound_arithmetic == "float32" and dtype != torch.float64:
        w32 = weight.to(dtype).to(torch.float32).abs()
        b32 = bias.to(dtype).to(torch.float32).abs()
        return torch.addmm(b32, x.reshape(-1, x.shape[-1]).to(torch.float32).abs(), w32.T)
    w64 = weight.to(dtype).to(torch.float64).abs()
    b64 = bias.to(dtype).to(torch.float64).abs()
    return x.to(torch.float64).abs() @ w64.T + b64


def floor_work(config: ExperimentConfig, bound_arithmetic: str = "float64",
               sides: bool = True) -> None:
    """Everything listed in the module docstring, for one config; returns nothing."""
    device = resolve_device(config.device)
    dtype = TORCH_DTYPES[config.dtype]
    x, params = make_input_and_parameters(config)
    impl_a, impl_b = config.impl_a, config.impl_b
    with torch.inference_mode():
        net_a = Network(impl_a, params, config.activation, device, dtype, config.emulate_a)
        net_b = Network(impl_b, params, config.activation, device, dtype, config.emulate_b)
        referee = Referee(params, config.activation, dtype, config.rows)
        x_device = x.to(device=device, dtype=dtype)
        h_a, h_b = to_native(impl_a, x_device), to_native(impl_b, x_device)
        h_ref = referee.start(x, dtype) if referee.available else None
        last = len(net_a) - 1
        for i in range(len(net_a)):
            input_a, input_b = from_native(impl_a, h_a), from_native(impl_b, h_b)
            pre_a, pre_b = net_a.layers[i](h_a), net_b.layers[i](h_b)
            local_b = pre_b if i == 0 else net_b.layers[i](to_native(impl_b, input_a))
            pre_ref = referee.layer(i, h_ref) if h_ref is not None else None
            weight, bias = params[i]
            reads = [pre_a, pre_b, local_b, _magnitude(input_a, weight, bias, dtype,
                                                       bound_arithmetic)]
            if pre_ref is not None:
                reads.append(referee.as_float64(pre_ref))
                if sides and i > 0:
                    reads += [referee.as_float64(referee.exact_layer(i, input_a)),
                              referee.as_float64(referee.exact_layer(i, input_b)),
                              _magnitude(input_b, weight, bias, dtype, bound_arithmetic)]
            for t in reads:
                _read(t)
            del reads
            if i == last:
                break
            h_a, h_b = net_a.activation(pre_a), net_b.activation(pre_b)
            h_ref = referee.activate(pre_ref) if pre_ref is not None else None
            for t in (h_a, h_b):
                _read(t)
            if h_ref is not None:
                _read(referee.as_float64(h_ref))


def time_floor(config: ExperimentConfig, repeats: int = 5,
               bound_arithmetic: str = "float64", sides: bool = True) -> float:
    """Median seconds of ``floor_work`` over repeats, after one warm-up call."""
    floor_work(config, bound_arithmetic, sides)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        floor_work(config, bound_arithmetic, sides)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", default="seed")
    parser.add_argument("--activation")
    parser.add_argument("--init-scheme")
    parser.add_argument("--input-dim", type=int)
    parser.add_argument("--depth", type=int)
    parser.add_argument("--widths")
    parser.add_argument("--batch", type=int)
    parser.add_argument("--samples", type=int)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--bound-arithmetic", choices=("float64", "float32"),
                        default="float64")
    parser.add_argument("--no-sides", action="store_true",
                        help="leave out the per-side exact results (issue 13's floor)")
    parser.add_argument("--once", action="store_true",
                        help="run the floor's work once, untimed (for whole-process timing)")
    args = parser.parse_args(argv)
    overrides = {k: v for k, v in (("depth", args.depth), ("batch", args.batch),
                                   ("samples", args.samples), ("activation", args.activation),
                                   ("init_scheme", args.init_scheme),
                                   ("input_dim", args.input_dim)) if v is not None}
    if args.widths:
        overrides["widths"] = tuple(int(w) for w in args.widths.split(","))
    config = preset(args.preset, **overrides)
    if args.once:
        floor_work(config, args.bound_arithmetic, not args.no_sides)
        return 0
    seconds = time_floor(config, args.repeats, args.bound_arithmetic, not args.no_sides)
    print(f"floor {seconds * 1e3:.1f} ms ({config.rows} rows, layers "
          f"{'-'.join(map(str, config.layer_sizes))}, bound in {args.bound_arithmetic})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
