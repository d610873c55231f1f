"""One MLP, several implementations, one shared parameter set.

Parameters are drawn once (float64 master copy on the CPU) and handed to every
implementation through ``weight_for``, the single place that converts a Linear-layout
weight (out, in) into each implementation's layout. Each implementation keeps the data in
its own native layout from the first layer to the last, exactly as a user would write it
(the forum's conv network runs on (B, C, S, 1) throughout); ``to_native`` and
``from_native`` are pure permutations, so they move values without rounding anything.

A network can also run each layer in calls of a few rows (``rows_per_call``, see
``split_rows``), and ``linear_compiled`` runs each layer through torch.compile (see
explorer.compiled).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from explorer import compiled
from explorer.config import ExperimentConfig
from explorer.precision import round_operand

Parameters = list[tuple[torch.Tensor, torch.Tensor]]  # [(W (out, in), b (out,))] per layer

ACTIVATION_MODULES: dict[str, Callable[[], nn.Module]] = {
    "elu": nn.ELU,
    "sigmoid": nn.Sigmoid,
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "leaky_relu": nn.LeakyReLU,
    "softplus": nn.Softplus,
    "identity": nn.Identity,
}


def make_generator(seed: int) -> torch.Generator:
    """A private CPU generator: same stream as torch.manual_seed(seed), no global state."""
    generator = torch.Generator(device="cpu")
    generator.manual_seed(seed)
    return generator


def make_input_and_parameters(config: ExperimentConfig) -> tuple[torch.Tensor, Parameters]:
    """The input (B, S, input_dim) as float32 on the CPU, then the parameters in float64.

    Order follows the forum script: seed, draw the input, then build the model (whose
    random init only matters for init_scheme=torch_default).
    """
    generator = make_generator(config.seed)
    shape = (config.batch, config.samples, config.input_dim)
    if config.input_distribution == "integers":
        x = torch.randint(-4, 5, shape, generator=generator).to(torch.float32)
    else:
        x = torch.randn(shape, generator=generator)
    return x, make_parameters(config, generator)


def make_parameters(config: ExperimentConfig, generator: torch.Generator) -> Parameters:
    params: Parameters = []
    sizes = config.layer_sizes
    c = float(config.init_constant)
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        if config.init_scheme == "constant":
            w = torch.full((fan_out, fan_in), c, dtype=torch.float64)
            b = torch.full((fan_out,), c, dtype=torch.float64)
        elif config.init_scheme == "constant_zero_bias":
            w = torch.full((fan_out, fan_in), c, dtype=torch.float64)
            b = torch.zeros(fan_out, dtype=torch.float64)
        elif config.init_scheme == "torch_default":
            # nn.Linear.reset_parameters: kaiming_uniform(a=sqrt(5)) and the bias rule both
            # give U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
            bound = 1.0 / math.sqrt(fan_in)
            w = (torch.rand((fan_out, fan_in), generator=generator, dtype=torch.float64)
                 * 2 - 1) * bound
            b = (torch.rand((fan_out,), generator=generator, dtype=torch.float64)
                 * 2 - 1) * bound
        elif config.init_scheme == "normal":
            w = torch.randn((fan_out, fan_in), generator=generator, dtype=torch.float64) * c
            b = torch.zeros(fan_out, dtype=torch.float64)
        else:  # validated in config; this is an internal invariant
            raise AssertionError(config.init_scheme)
        params.append((w, b))
    return params


def weight_for(implementation: str, weight: torch.Tensor) -> torch.Tensor:
    """Linear layout (out, in) -> the implementation's weight layout, shape-checked.

    A 1x1 convolution's kernel (out, in, 1, 1) holds the same numbers as a Linear weight;
    only trailing singleton axes differ. tensordot contracts x's last axis with the
    weight's axis 1, so it takes the Linear layout unchanged.
    """
    if weight.dim() != 2:
        raise ValueError(f"expected a Linear weight of shape (out, in), got {tuple(weight.shape)}")
    out_features, in_features = weight.shape
    if implementation in ("linear", "tensordot", "matmul", "linear_compiled"):
        converted = weight
        expected: tuple[int, ...] = (out_features, in_features)
    elif implementation == "conv2d":
        converted = weight.reshape(out_features, in_features, 1, 1)
        expected = (out_features, in_features, 1, 1)
    elif implementation == "conv1d":
        converted = weight.reshape(out_features, in_features, 1)
        expected = (out_features, in_features, 1)
    else:
        raise ValueError(f"implementation={implementation!r} is unknown")
    assert tuple(converted.shape) == expected, (implementation, converted.shape, expected)
    return converted


# --- layouts: pure permutations, no arithmetic -----------------------------------------

def to_native(implementation: str, x: torch.Tensor) -> torch.Tensor:
    """(B, S, C) -> the layout the implementation works in."""
    if implementation == "conv2d":
        return x.unsqueeze(3).permute(0, 2, 1, 3)  # (B, C, S, 1), as the forum
    if implementation == "conv1d":
        return x.permute(0, 2, 1)  # (B, C, S)
    return x  # (B, S, C)


def from_native(implementation: str, y: torch.Tensor) -> torch.Tensor:
    """The implementation's layout -> (B, S, C)."""
    if implementation == "conv2d":
        return y.squeeze(3).permute(0, 2, 1)
    if implementation == "conv1d":
        return y.permute(0, 2, 1)
    return y


# --- one affine layer per implementation ------------------------------------------------

@dataclass
class AffineLayer:
    """y = W x + b in one implementation's kernel, operating on its native layout."""

    implementation: str
    weight: torch.Tensor  # in the implementation's layout, already emulation-rounded
    bias: torch.Tensor
    emulation: str = "none"
    module: nn.Module | None = None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = round_operand(x, self.emulation)
        if self.module is not None:
            return self.module(x)
        if self.implementation == "tensordot":
            return torch.tensordot(x, self.weight, dims=([x.dim() - 1], [1])) + self.bias
        if self.implementation == "matmul":
            return x @ self.weight.T + self.bias
        raise AssertionError(self.implementation)


def build_layer(implementation: str, weight: torch.Tensor, bias: torch.Tensor,
                emulation: str = "none") -> AffineLayer:
    """One layer with the shared parameters (weight in Linear layout, on its device/dtype)."""
    out_features, in_features = weight.shape
    rounded = round_operand(weight, emulation)
    native = weight_for(implementation, rounded)
    module: nn.Module | None = None
    factory = {"device": weight.device, "dtype": weight.dtype}
    # skip_init: no random init that would touch the global RNG (other sessions use it).
    if implementation == "linear":
        module = nn.utils.skip_init(nn.Linear, in_features, out_features, bias=True, **factory)
    elif implementation == "conv2d":
        module = nn.utils.skip_init(nn.Conv2d, in_features, out_features, 1, bias=True,
                                    **factory)
    elif implementation == "conv1d":
        module = nn.utils.skip_init(nn.Conv1d, in_features, out_features, 1, bias=True,
                                    **factory)
    if module is not None:
        with torch.no_grad():
            module.weight.copy_(native)
            module.bias.copy_(bias)
        module.requires_grad_(False)
    return AffineLayer(implementation, native, bias, emulation, module)


# --- rows per call -----------------------------------------------------------------

Joiner = Callable[[list[torch.Tensor]], torch.Tensor]


def split_rows(implementation: str, h: torch.Tensor, rows_per_call: int
               ) -> tuple[list[torch.Tensor], Joiner] | None:
    """Cut a layer's input (native layout) into calls of ``rows_per_call`` rows each, and
    say how to join the calls' outputs; None when the whole batch is one call.

    A row is one (batch element, sample) position, in (b, s) order: for linear, matmul and
    tensordot a row of the (B, S, C) input; for conv2d a position of (B, C, S, 1), for
    conv1d one of (B, C, S). Every call gets exactly ``rows_per_call`` rows (the last
    call the remainder):

    - when ``rows_per_call`` is a multiple of S, a call takes rows_per_call / S whole batch
      elements, a slice of the native tensor: exactly a smaller batch, as a user would run
      it ((k, C, S, 1) for conv2d, (k, S, C) for linear);
    - otherwise the rows are laid side by side as one batch element of rows_per_call
      samples: (1, N, C) for linear, (1, C, N, 1) for conv2d, (1, C, N) for conv1d, in the
      same memory order the whole batch had.

    Outputs are joined back into the native layout of the whole batch.
    """
    h_bsc = from_native(implementation, h)  # (B, S, C), a view
    batch, samples, _ = h_bsc.shape
    rows = batch * samples
    if rows_per_call <= 0 or rows_per_call >= rows:
        return None
    if rows_per_call % samples == 0:
        step = rows_per_call // samples
        chunks = [to_native(implementation, h_bsc[i:i + step]) for i in range(0, batch, step)]
        return chunks, lambda outs: torch.cat(outs, dim=0)  # dim 0 is B in every layout
    flat = h_bsc.reshape(rows, h_bsc.shape[-1])  # (rows, C): a copy unless contiguous
    contiguous = h.is_contiguous()
    chunks = []
    for start in range(0, rows, rows_per_call):
        chunk = to_native(implementation, flat[start:start + rows_per_call].unsqueeze(0))
        chunks.append(chunk.contiguous() if contiguous else chunk)

    def join(outs: list[torch.Tensor]) -> torch.Tensor:
        rows_out = torch.cat([from_native(implementation, o)[0] for o in outs], dim=0)
        joined = to_native(implementation, rows_out.reshape(batch, samples, -1))
        return joined.contiguous() if contiguous else joined

    return chunks, join


class Network:
    """The MLP in one implementation: affine layers with the activation between them."""

    def __init__(self, implementation: str, params: Parameters, activation: str,
                 device: torch.device, dtype: torch.dtype, emulation: str = "none",
                 rows_per_call: int = 0):
        if implementation == "linear_compiled":
            compiled.check_available(device)
        self.implementation = implementation
        self.rows_per_call = rows_per_call
        self.layers = [
            build_layer(implementation, w.to(device=device, dtype=dtype),
                        b.to(device=device, dtype=dtype), emulation)
            for w, b in params
        ]
        self.activation_name = activation
        self.activation = ACTIVATION_MODULES[activation]()
        self.compile_seconds = 0.0  # spent compiling during this network's calls

    def __len__(self) -> int:
        return len(self.layers)

    def _call(self, i: int, h: torch.Tensor, last: bool
              ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """One kernel call of layer i: (pre, post), post None for the last layer."""
        layer = self.layers[i]
        if self.implementation == "linear_compiled":
            pre, post, seconds = compiled.CACHE.call(
                round_operand(h, layer.emulation), layer.weight, layer.bias,
                self.activation_name, self.activation, last)
            self.compile_seconds += seconds
            return pre, post
        pre = layer(h)
        return pre, None if last else self.activation(pre)

    def step(self, i: int, h: torch.Tensor, pre_only: bool = False
             ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Layer i on h (native layout), in calls of rows_per_call rows: (pre, post).

        ``pre_only``: post is None (no activation array) when only pre is wanted. A
        compiled network still computes its graph's post: a graph without one would be a
        second compilation."""
        last = i == len(self.layers) - 1 or (
            pre_only and self.implementation != "linear_compiled")
        split = split_rows(self.implementation, h, self.rows_per_call)
        if split is None:
            return self._call(i, h, last)
        chunks, join = split
        outputs = [self._call(i, chunk, last) for chunk in chunks]
        pre = join([pre for pre, _ in outputs])
        return pre, None if last else join([post for _, post in outputs])

    def forward_taps(self, x_bsc: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor | None]]:
        """Run the whole network; per layer (pre, post) in (B, S, C), post None at the end."""
        taps = []
        h = to_native(self.implementation, x_bsc)
        for i in range(len(self.layers)):
            pre, post = self.step(i, h)
            taps.append((from_native(self.implementation, pre),
                         None if post is None else from_native(self.implementation, post)))
            if post is not None:
                h = post
        return taps

    def forward(self, x_bsc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(logits, feats) in (B, S, C), as the forum's models return them."""
        taps = self.forward_taps(x_bsc)
        feats = taps[-2][1] if len(taps) > 1 else x_bsc
        return taps[-1][0], feats
