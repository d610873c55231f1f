"""Execution variants written with plain torch, sharing no code with the library.

An MLP of nn.Linear layers built from a documented recipe (the forum's: seed, draw the
input, then the parameters), run the way a user would run a variant: in calls of a few
rows, with another thread count, or with bfloat16 operands. Tests compare the library's
report with these in the same run, never with one machine's numbers.
"""

import math

import torch
from torch import nn

ACTIVATIONS = {"elu": nn.ELU, "gelu": nn.GELU}


def make_network(sizes, init_scheme, activation, seed, batch, samples):
    """(x (B, S, C) float32, [nn.Linear], activation module) from the recipe."""
    torch.manual_seed(seed)
    x = torch.randn(batch, samples, sizes[0])
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        if init_scheme == "constant":
            w = torch.ones(fan_out, fan_in, dtype=torch.float64)
            b = torch.ones(fan_out, dtype=torch.float64)
        else:  # torch_default: U(-1/sqrt(fan_in), 1/sqrt(fan_in)), drawn in float64
            bound = 1.0 / math.sqrt(fan_in)
            w = (torch.rand((fan_out, fan_in), dtype=torch.float64) * 2 - 1) * bound
            b = (torch.rand((fan_out,), dtype=torch.float64) * 2 - 1) * bound
        params.append((w, b))
    layers = []  # built after every draw: nn.Linear's own init uses the same generator
    for w, b in params:
        layer = nn.Linear(w.shape[1], w.shape[0])
        with torch.no_grad():
            layer.weight.copy_(w.float())
            layer.bias.copy_(b.float())
        layers.append(layer)
    return x, layers, ACTIVATIONS[activation]()


def bf16(t):
    return t.to(torch.bfloat16).to(torch.float32)


def forward(layers, act, x, *, bfloat16_operands=False):
    """Logits and the per-layer inputs (B, S, C); bfloat16_operands rounds each layer's
    input and weight to bfloat16 (the bias stays float32), accumulating in float32."""
    h, inputs = x, []
    for i, layer in enumerate(layers):
        inputs.append(h)
        if bfloat16_operands:
            pre = nn.functional.linear(bf16(h), bf16(layer.weight), layer.bias)
        else:
            pre = layer(h)
        h = pre if i == len(layers) - 1 else act(pre)
    return h, inputs


def in_calls(function, x, rows_per_call):
    """function on x (B, S, C) in calls of rows_per_call rows, joined: a multiple of S
    takes whole batch elements, otherwise rows sit side by side in one (1, N, C)."""
    batch, samples, features = x.shape
    if rows_per_call == 0 or rows_per_call >= batch * samples:
        return function(x)
    if rows_per_call % samples == 0:
        step = rows_per_call // samples
        return torch.cat([function(x[i:i + step]) for i in range(0, batch, step)])
    rows = x.reshape(batch * samples, features)
    parts = [function(rows[i:i + rows_per_call].unsqueeze(0))
             for i in range(0, batch * samples, rows_per_call)]
    return torch.cat(parts, dim=1).reshape(batch, samples, -1)


def with_threads(count, function, *args):
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        return function(*args)
    finally:
        torch.set_num_threads(before)


def max_abs_diff(a, b) -> float:
    return float((a.double() - b.double()).abs().max())


def flips(a, b) -> int:
    return int((a.argmax(dim=-1) != b.argmax(dim=-1)).sum())
