"""The seed preset must print exactly what the forum script prints on this machine.

The forum's setup is re-written here from its description in shared/DESIGN.md, with plain
torch.nn and nothing from the library, so the two share no code that could hide a bug.
"""

import torch
from torch import nn

from explorer import preset, run


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


def forum_numbers(seed=2010, batch=16, samples=5, sizes=(256, 64, 128, 256, 4)):
    torch.manual_seed(seed)
    x = torch.randn(batch, samples, sizes[0])
    linear, conv = ForumLinear(sizes), ForumConv(sizes)
    linear.apply(_constant_init)
    conv.apply(_constant_init)
    with torch.no_grad():
        logits, feats = linear(x)
        logits1, feats1 = conv(x)
    return float(torch.mean(logits1 - logits)), float((feats1 - feats).sum())


def test_seed_preset_prints_the_forum_numbers_exactly():
    expected_mean, expected_sum = forum_numbers()
    report = run(preset("seed"))
    assert report.summary.logits_mean_diff == expected_mean
    assert report.summary.feats_sum_diff == expected_sum
    # The forum's point: the two are not equal.
    assert expected_mean != 0.0 and expected_sum != 0.0


def test_other_seed_and_shape_also_match():
    expected_mean, expected_sum = forum_numbers(seed=7, batch=3, samples=2,
                                                sizes=(32, 16, 8))
    report = run(preset("seed", seed=7, batch=3, samples=2, input_dim=32, depth=1,
                        widths=(16,), num_classes=8))
    assert report.summary.logits_mean_diff == expected_mean
    assert report.summary.feats_sum_diff == expected_sum


def test_private_generator_draws_the_same_input_as_manual_seed():
    from explorer.models import make_input_and_parameters

    torch.manual_seed(2010)
    expected = torch.randn(16, 5, 256)
    x, _ = make_input_and_parameters(preset("seed"))
    assert torch.equal(x, expected)
