"""The forum's two networks written with plain torch.nn, sharing no code with the library.

Tests compute their expectations from these in the same run instead of quoting one
machine's numbers: which kernel runs, and so the summation order and every difference,
depends on the CPU's instruction set and the thread count.
"""

from dataclasses import dataclass

import torch
from torch import nn


class ForumLinear(nn.Module):
    def __init__(self, sizes):
        super().__init__()
        layers = []
        for fan_in, fan_out in zip(sizes[:-2], sizes[1:-1]):
            layers += [nn.Linear(fan_in, fan_out), nn.ELU()]
        self.backbone = nn.Sequential(*layers)
        self.head = nn.Linear(sizes[-2], sizes[-1])

    def forward(self, x):  # x: (B, S, C)
        feats = self.backbone(x)
        return self.head(feats), feats


class ForumConv(nn.Module):
    def __init__(self, sizes):
        super().__init__()
        layers = []
        for fan_in, fan_out in zip(sizes[:-2], sizes[1:-1]):
            layers += [nn.Conv2d(fan_in, fan_out, 1), nn.ELU()]
        self.backbone = nn.Sequential(*layers)
        self.head = nn.Conv2d(sizes[-2], sizes[-1], 1)

    def forward(self, x):
        x = x.unsqueeze(3).permute(0, 2, 1, 3)  # (B, C, S, 1)
        feats = self.backbone(x)
        logits = self.head(feats)
        return logits.squeeze(3).permute(0, 2, 1), feats.squeeze(3).permute(0, 2, 1)


def _constant_init(module):
    if hasattr(module, "weight"):
        nn.init.constant_(module.weight, 1)
    if hasattr(module, "bias"):
        nn.init.constant_(module.bias, 1)


@dataclass(frozen=True)
class ForumRun:
    x: torch.Tensor  # (B, S, C) float32
    logits_linear: torch.Tensor
    logits_conv: torch.Tensor
    feats_linear: torch.Tensor
    feats_conv: torch.Tensor
    first_layer_linear: torch.Tensor  # layer 1's pre-activation output, Linear network

    @property
    def mean_diff(self) -> float:
        """The forum's first print: torch.mean(logits1 - logits)."""
        return float(torch.mean(self.logits_conv - self.logits_linear))

    @property
    def feats_sum_diff(self) -> float:
        """The forum's second print: (feats1 - feats).sum()."""
        return float((self.feats_conv - self.feats_linear).sum())

    @property
    def logits_max_abs_diff(self) -> float:
        return float((self.logits_conv.double() - self.logits_linear.double()).abs().max())

    @property
    def first_layer_condition_max(self) -> float:
        """max over layer 1 of (|W||x| + |b|) / |Wx + b| with W = b = 1, in float64."""
        magnitude = self.x.double().abs().sum(-1, keepdim=True) + 1
        return float((magnitude / self.first_layer_linear.double().abs()).max())


def forum_run(seed=2010, batch=16, samples=5, sizes=(256, 64, 128, 256, 4)) -> ForumRun:
    torch.manual_seed(seed)
    x = torch.randn(batch, samples, sizes[0])
    linear, conv = ForumLinear(sizes), ForumConv(sizes)
    linear.apply(_constant_init)
    conv.apply(_constant_init)
    with torch.no_grad():
        logits, feats = linear(x)
        logits1, feats1 = conv(x)
        first = linear.backbone[0](x)
    return ForumRun(x, logits, logits1, feats, feats1, first)


def forum_numbers(**kwargs) -> tuple[float, float]:
    run = forum_run(**kwargs)
    return run.mean_diff, run.feats_sum_diff
