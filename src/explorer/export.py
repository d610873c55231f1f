"""Export a Report: CSV, JSON, the charts as one standalone HTML page, and a Python script.

The script ("Reproduce in Python") is written in the spirit of the forum's: plain torch.nn,
no import of this package, both networks built with the chosen settings, and the same
headline numbers printed. ``expected_output(report)`` is what that script prints, so the
app can show it next to the script and a test can hold the two to exact equality.
"""

from __future__ import annotations

import html
import textwrap
from collections.abc import Mapping

import plotly.graph_objects as go

from explorer.config import ExperimentConfig
from explorer.report import Report
from explorer.sides import settings_words

# ---------------------------------------------------------------------------------------
# Tables.


def report_csv(report: Report) -> str:
    """One row per tap, one column per metric; empty cells where a metric does not apply."""
    return report.to_frame().to_csv(index=False)


def report_json(report: Report) -> str:
    """The CLI's JSON contract (config, environment, summary, taps), strict JSON."""
    return report.to_json(indent=2)


# ---------------------------------------------------------------------------------------
# Charts as one HTML file that works offline (plotly.js inlined once, ~4 MB).


def charts_html(figures: Mapping[str, go.Figure], report: Report, title: str = "") -> str:
    """A standalone page: the verdict, the settings, then every figure in order."""
    title = title or "Numerical Error Explorer: " + _config_line(report.config)
    parts = []
    for i, fig in enumerate(figures.values()):
        parts.append(fig.to_html(full_html=False, include_plotlyjs=(i == 0),
                                 config={"displaylogo": False}))
    details = "".join(f"<li>{html.escape(d)}</li>" for d in report.verdict.details)
    environment = html.escape(
        f"torch {report.environment.get('torch_version')}, "
        f"{report.environment.get('device')} ({report.environment.get('device_name')}), "
        f"referee: {report.environment.get('referee')}")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title>"
        "<style>body{font-family:system-ui,sans-serif;max-width:1200px;margin:2em auto;"
        "padding:0 1em;color:#1a1a1a}h1{font-size:1.5em}.verdict{font-size:1.2em;"
        "font-weight:600}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        f"<p class=\"verdict\">{html.escape(report.verdict.headline)}</p>"
        f"<ul>{details}</ul><p>{environment}</p>"
        + "".join(f"<div>{p}</div>" for p in parts)
        + "</body></html>\n"
    )


def _config_line(config: ExperimentConfig) -> str:
    sizes = "-".join(str(s) for s in config.layer_sizes)
    side_a = config.impl_a + (f" [{config.emulate_a}]" if config.emulate_a != "none" else "")
    side_b = config.impl_b + (f" [{config.emulate_b}]" if config.emulate_b != "none" else "")
    variants = settings_words(config)
    side_b += f"; {variants}" if variants else ""
    return (f"A = {side_a} vs B = {side_b}, {config.activation}, {config.init_scheme} "
            f"{config.init_constant:g}, {sizes}, {config.dtype} on {config.device}")


# ---------------------------------------------------------------------------------------
# "Reproduce in Python".

# What the generated script prints, one line per number; values are Python reprs, which
# round-trip exactly.
OUTPUT_LINES = (
    ("mean(logits_B - logits_A)", "logits_mean_diff"),
    ("sum(feats_B - feats_A)", "feats_sum_diff"),
    ("max |logits_A - logits_B|", "logits_max_abs_diff"),
)


def expected_output(report: Report) -> str:
    """Exactly what ``reproduce_script(report.config)`` prints on the machine that made report."""
    width = max(len(label) for label, _ in OUTPUT_LINES)
    return "".join(f"{label:<{width}} = {getattr(report.summary, name)!r}\n"
                   for label, name in OUTPUT_LINES)


_ACTIVATION_CODE = {
    "elu": "nn.ELU", "sigmoid": "nn.Sigmoid", "relu": "nn.ReLU", "tanh": "nn.Tanh",
    "gelu": "nn.GELU", "silu": "nn.SiLU", "leaky_relu": "nn.LeakyReLU",
    "softplus": "nn.Softplus", "identity": "nn.Identity",
}

_CLASS_NAMES = {"linear": "LinearNet", "conv2d": "Conv2dNet", "conv1d": "Conv1dNet",
                "tensordot": "TensordotNet", "matmul": "MatmulNet",
                "linear_compiled": "LinearCompiledNet"}

# One class per implementation. Each keeps its own layout from input to output, as a user
# would write it; the permutes only move values. `rnd` rounds an operand before each
# product (identity unless reduced precision is emulated); weights arrive already rounded.
_CLASS_CODE = {
    "linear": '''
        class LinearNet(nn.Module):
            """nn.Linear on (B, S, C), like the forum's Model."""

            def __init__(self, params, rnd):
                super().__init__()
                self.rnd = rnd
                self.layers = nn.ModuleList()
                for w, b in params:
                    layer = nn.Linear(w.shape[1], w.shape[0], bias=True,
                                      device=DEVICE, dtype=DTYPE)
                    with torch.no_grad():
                        layer.weight.copy_(w)
                        layer.bias.copy_(b)
                    self.layers.append(layer)
                self.act = ACTIVATION()

            def forward(self, x):  # x: (B, S, C)
                h = x
                for layer in self.layers[:-1]:
                    h = self.act(layer(self.rnd(h)))
                logits = self.layers[-1](self.rnd(h))
                return logits, h  # (logits, feats), both (B, S, C)
    ''',
    "conv2d": '''
        class Conv2dNet(nn.Module):
            """1x1 nn.Conv2d on (B, C, S, 1), exactly like the forum's ModelConv."""

            def __init__(self, params, rnd):
                super().__init__()
                self.rnd = rnd
                self.layers = nn.ModuleList()
                for w, b in params:
                    conv = nn.Conv2d(w.shape[1], w.shape[0], 1, bias=True,
                                     device=DEVICE, dtype=DTYPE)
                    with torch.no_grad():
                        conv.weight.copy_(w.reshape(w.shape[0], w.shape[1], 1, 1))
                        conv.bias.copy_(b)
                    self.layers.append(conv)
                self.act = ACTIVATION()

            def forward(self, x):  # x: (B, S, C)
                h = x.unsqueeze(3).permute(0, 2, 1, 3)  # (B, C, S, 1)
                for conv in self.layers[:-1]:
                    h = self.act(conv(self.rnd(h)))
                logits = self.layers[-1](self.rnd(h))
                feats = h.squeeze(3).permute(0, 2, 1)  # back to (B, S, C)
                logits = logits.squeeze(3).permute(0, 2, 1)
                return logits, feats
    ''',
    "conv1d": '''
        class Conv1dNet(nn.Module):
            """Kernel-1 nn.Conv1d on (B, C, S)."""

            def __init__(self, params, rnd):
                super().__init__()
                self.rnd = rnd
                self.layers = nn.ModuleList()
                for w, b in params:
                    conv = nn.Conv1d(w.shape[1], w.shape[0], 1, bias=True,
                                     device=DEVICE, dtype=DTYPE)
                    with torch.no_grad():
                        conv.weight.copy_(w.reshape(w.shape[0], w.shape[1], 1))
                        conv.bias.copy_(b)
                    self.layers.append(conv)
                self.act = ACTIVATION()

            def forward(self, x):  # x: (B, S, C)
                h = x.permute(0, 2, 1)  # (B, C, S)
                for conv in self.layers[:-1]:
                    h = self.act(conv(self.rnd(h)))
                logits = self.layers[-1](self.rnd(h))
                return logits.permute(0, 2, 1), h.permute(0, 2, 1)  # (B, S, C)
    ''',
    "tensordot": '''
        class TensordotNet(nn.Module):
            """torch.tensordot over the last axis of (B, S, C)."""

            def __init__(self, params, rnd):
                super().__init__()
                self.rnd = rnd
                self.params = [(w.to(DEVICE), b.to(DEVICE)) for w, b in params]
                self.act = ACTIVATION()

            def layer(self, i, h):
                w, b = self.params[i]
                h = self.rnd(h)
                return torch.tensordot(h, w, dims=([h.dim() - 1], [1])) + b

            def forward(self, x):  # x: (B, S, C)
                h = x
                for i in range(len(self.params) - 1):
                    h = self.act(self.layer(i, h))
                return self.layer(len(self.params) - 1, h), h
    ''',
    "matmul": '''
        class MatmulNet(nn.Module):
            """x @ W.T + b on (B, S, C)."""

            def __init__(self, params, rnd):
                super().__init__()
                self.rnd = rnd
                self.params = [(w.to(DEVICE), b.to(DEVICE)) for w, b in params]
                self.act = ACTIVATION()

            def layer(self, i, h):
                w, b = self.params[i]
                return self.rnd(h) @ w.T + b

            def forward(self, x):  # x: (B, S, C)
                h = x
                for i in range(len(self.params) - 1):
                    h = self.act(self.layer(i, h))
                return self.layer(len(self.params) - 1, h), h
    ''',
    "linear_compiled": '''
        def compiled_layer(act, last):
            """One layer (x, W, b) -> (W x + b, act(W x + b)) through torch.compile; the
            last layer returns (W x + b, None). Weights are arguments, as in the explorer."""
            def layer(x, w, b):
                pre = nn.functional.linear(x, w, b)
                return pre, (None if last else act(pre))
            return torch.compile(layer, backend="inductor", dynamic=False, fullgraph=True)


        class LinearCompiledNet(nn.Module):
            """nn.Linear's network on (B, S, C), each layer compiled by inductor."""

            def __init__(self, params, rnd):
                super().__init__()
                self.rnd = rnd
                self.params = [(w.to(DEVICE), b.to(DEVICE)) for w, b in params]
                self.act = ACTIVATION()
                last = len(self.params) - 1
                self.layers = [compiled_layer(self.act, i == last)
                               for i in range(len(self.params))]

            def forward(self, x):  # x: (B, S, C)
                h = x
                for layer, (w, b) in zip(self.layers, self.params):
                    pre, post = layer(self.rnd(h).contiguous(), w, b)
                    if post is None:
                        return pre, h
                    h = post
    ''',
}

# Compiled layers share one code object: let each layer shape compile once, and fail
# rather than fall back to eager silently.
_COMPILE_SETUP = """
torch._dynamo.config.recompile_limit = 1024
torch._dynamo.config.fail_on_recompile_limit_hit = True
"""

_RUN_SIDE_CODE = '''
def in_calls(net, x, rows_per_call):
    """net on x (B, S, C) in calls of rows_per_call rows (0: the whole batch at once).
    A multiple of S takes whole batch elements; otherwise the rows go side by side as
    one batch element of rows_per_call samples."""
    batch, samples, features = x.shape
    if rows_per_call == 0 or rows_per_call >= batch * samples:
        return net(x)
    if rows_per_call % samples == 0:
        step = rows_per_call // samples
        outs = [net(x[i:i + step]) for i in range(0, batch, step)]
        return torch.cat([o[0] for o in outs]), torch.cat([o[1] for o in outs])
    rows = x.reshape(batch * samples, features)
    outs = [net(rows[i:i + rows_per_call].unsqueeze(0))
            for i in range(0, batch * samples, rows_per_call)]
    return tuple(torch.cat([o[k] for o in outs], dim=1).reshape(batch, samples, -1)
                 for k in (0, 1))


def run_side(net, x, rows_per_call, threads):
    """One side: its rows per call, and its own CPU thread count (0: as set above)."""
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return in_calls(net, x, rows_per_call)
    finally:
        torch.set_num_threads(before)
'''


def _variant_constants(config: ExperimentConfig) -> str:
    if not _has_variants(config):
        return ""
    return (f"ROWS_PER_CALL_A, ROWS_PER_CALL_B = {config.rows_per_call_a}, "
            f"{config.rows_per_call_b}  # 0: the whole batch\n"
            f"THREADS_A, THREADS_B = {config.threads_a}, {config.threads_b}  # 0: as set "
            f"below\n")


def _has_variants(config: ExperimentConfig) -> bool:
    return bool(config.rows_per_call_a or config.rows_per_call_b or config.threads_a
                or config.threads_b)


def _run_line(config: ExperimentConfig, side: str) -> str:
    if not _has_variants(config):
        return f"logits_{side}, feats_{side} = net_{side}(x)"
    return (f"logits_{side}, feats_{side} = run_side(net_{side}, x, ROWS_PER_CALL_"
            f"{side.upper()}, THREADS_{side.upper()})")

_EMULATION_CODE = {
    "none": "",
    "bf16": '''
        def round_bf16(t):
            """A float32 operand as a bfloat16 multiplier sees it (storage stays float32)."""
            return t.to(torch.bfloat16).to(torch.float32)
    ''',
    "fp16": '''
        def round_fp16(t):
            """A float32 operand as a float16 multiplier sees it (storage stays float32)."""
            return t.to(torch.float16).to(torch.float32)
    ''',
    "tf32": '''
        def round_tf32(t):
            """Round float32 to TF32's 10 mantissa bits (nearest, ties to even), as Ampere
            tensor cores do to each operand; the result is still float32."""
            bits = t.contiguous().view(torch.int32).to(torch.int64) & 0xFFFFFFFF
            lsb = (bits >> 13) & 1
            rounded = (bits + 0x0FFF + lsb) & 0xFFFFE000
            keep = (bits & 0x7F800000) == 0x7F800000  # inf and NaN pass through
            out = torch.where(keep, bits, rounded)
            out = torch.where(out >= 2**31, out - 2**32, out).to(torch.int32)
            return out.view(torch.float32).view_as(t)
    ''',
}

_ROUNDER_NAME = {"none": "no_rounding", "tf32": "round_tf32", "bf16": "round_bf16",
                 "fp16": "round_fp16"}

_INPUT_CODE = {
    "normal": "x = torch.randn(BATCH, SAMPLES, INPUT_DIM)",
    "integers": "x = torch.randint(-4, 5, (BATCH, SAMPLES, INPUT_DIM)).to(torch.float32)",
}

_PARAMETER_CODE = {
    "constant": '''
            w = torch.full((fan_out, fan_in), INIT_CONSTANT, dtype=torch.float64)
            b = torch.full((fan_out,), INIT_CONSTANT, dtype=torch.float64)''',
    "constant_zero_bias": '''
            w = torch.full((fan_out, fan_in), INIT_CONSTANT, dtype=torch.float64)
            b = torch.zeros(fan_out, dtype=torch.float64)''',
    "torch_default": '''
            # nn.Linear's own init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for W and b.
            bound = 1.0 / math.sqrt(fan_in)
            w = (torch.rand((fan_out, fan_in), dtype=torch.float64) * 2 - 1) * bound
            b = (torch.rand((fan_out,), dtype=torch.float64) * 2 - 1) * bound''',
    "normal": '''
            w = torch.randn((fan_out, fan_in), dtype=torch.float64) * INIT_CONSTANT
            b = torch.zeros(fan_out, dtype=torch.float64)''',
}


def _backend_code(config: ExperimentConfig) -> str:
    lines = []
    if config.threads:
        lines.append(f"torch.set_num_threads({config.threads})")
    if "linear_compiled" in (config.impl_a, config.impl_b):
        lines += textwrap.dedent(_COMPILE_SETUP).strip().splitlines()
    if config.device.startswith("cuda"):
        lines.append("# CUDA switches: TF32 for convolutions (cuDNN) and for matmuls (cuBLAS).")
        for name, state, api in (("conv", config.conv_tf32, "torch.backends.cudnn.conv"),
                                 ("matmul", config.matmul_tf32, "torch.backends.cuda.matmul")):
            if state != "default":
                precision = "tf32" if state == "on" else "ieee"
                lines.append(f"{api}.fp32_precision = {precision!r}  # {name} TF32 {state}")
        lines.append(f"torch.backends.cudnn.deterministic = {config.cudnn_deterministic}")
        lines.append(f"torch.backends.cudnn.benchmark = {config.cudnn_benchmark}")
    return "\n".join(lines)


def reproduce_script(config: ExperimentConfig) -> str:
    """A self-contained script (torch only) that rebuilds both networks and prints the
    forum's two numbers plus the largest difference at the logits (see expected_output)."""
    impls = list(dict.fromkeys((config.impl_a, config.impl_b)))
    emulations = [e for e in dict.fromkeys((config.emulate_a, config.emulate_b)) if e != "none"]
    sides = []
    for side, impl, emulation in (("A", config.impl_a, config.emulate_a),
                                  ("B", config.impl_b, config.emulate_b)):
        rounding = f" ({emulation} operands)" if emulation != "none" else ""
        sides.append(f"{side} = {impl}{rounding}")
    variants = settings_words(config)
    side_line = ", ".join(sides) + (f"; {variants}" if variants else "")
    width = max(len(label) for label, _ in OUTPUT_LINES)
    prints = "\n".join(f'print(f"{label:<{width}} = {{{name}!r}}")'
                       for label, name in OUTPUT_LINES)
    rnd_a, rnd_b = _ROUNDER_NAME[config.emulate_a], _ROUNDER_NAME[config.emulate_b]
    sections = [
        f'''"""Same MLP, two implementations, identical parameters: do the outputs agree?

{side_line}; {config.activation}; layers {"-".join(map(str, config.layer_sizes))};
{config.init_scheme} init, constant {config.init_constant!r}; seed {config.seed};
batch {config.batch} x {config.samples} samples; {config.dtype} on {config.device}.
Generated by the Numerical Error Explorer; needs only torch.
"""
''',
        ("import math\n\n" if config.init_scheme == "torch_default" else "")
        + "import torch\nfrom torch import nn\n",
        f"""INPUT_DIM = {config.input_dim}
WIDTHS = {list(config.hidden_widths)!r}  # hidden layers
NUM_CLASSES = {config.num_classes}
BATCH, SAMPLES = {config.batch}, {config.samples}
SEED = {config.seed}
INIT_CONSTANT = {config.init_constant!r}
ACTIVATION = {_ACTIVATION_CODE[config.activation]}
DEVICE = torch.device({config.device!r})
DTYPE = torch.{config.dtype}
""" + _variant_constants(config),
        _indent_into(_MAKE_PARAMETERS, "{init}", _PARAMETER_CODE[config.init_scheme]),
        _CAST_CODE,
        *(textwrap.dedent(_EMULATION_CODE[e]).strip() + "\n" for e in emulations),
        *(textwrap.dedent(_CLASS_CODE[i]).strip() + "\n" for i in impls),
        *([textwrap.dedent(_RUN_SIDE_CODE).strip() + "\n"] if _has_variants(config) else []),
        _indent_into(_indent_into(
            _MAIN.format(backend="{backend}", input=_INPUT_CODE[config.input_distribution],
                         class_a=_CLASS_NAMES[config.impl_a], rnd_a=rnd_a,
                         class_b=_CLASS_NAMES[config.impl_b], rnd_b=rnd_b, prints="{prints}",
                         run_a=_run_line(config, "a"), run_b=_run_line(config, "b")),
            "{backend}", _backend_code(config)), "{prints}", prints),
    ]
    return "\n\n".join(section.strip("\n") + "\n" for section in sections).replace(
        '"""\n\n\nimport', '"""\nimport').replace("nn\n\n\nINPUT", "nn\n\nINPUT")


def _indent_into(template: str, placeholder: str, code: str) -> str:
    """Replace the line holding placeholder with code, indented like that line (or drop it)."""
    lines = []
    for line in template.splitlines():
        if line.strip() == placeholder:
            indent = line[: len(line) - len(line.lstrip())]
            lines.extend(indent + c if c else "" for c in textwrap.dedent(code).strip("\n")
                         .splitlines() if code.strip())
        else:
            lines.append(line)
    return "\n".join(lines) + "\n"


_MAKE_PARAMETERS = '''
def no_rounding(t):
    return t


def make_parameters():
    """[(W (out, in), b (out,))] per layer in float64, drawn after the input."""
    sizes = [INPUT_DIM, *WIDTHS, NUM_CLASSES]
    params = []
    for fan_in, fan_out in zip(sizes[:-1], sizes[1:]):
        {init}
        params.append((w, b))
    return params
'''

_CAST_CODE = '''
def cast(params, rnd):
    """Parameters in the compute dtype; weights rounded as the emulated hardware would."""
    return [(rnd(w.to(DTYPE)), b.to(DTYPE)) for w, b in params]
'''

_MAIN = '''
if __name__ == "__main__":
    {backend}
    torch.manual_seed(SEED)
    {input}
    params = make_parameters()  # same RNG stream, right after the input
    x = x.to(device=DEVICE, dtype=DTYPE)

    net_a = {class_a}(cast(params, {rnd_a}), {rnd_a})
    net_b = {class_b}(cast(params, {rnd_b}), {rnd_b})
    with torch.inference_mode():
        {run_a}
        {run_b}

    # The forum's two numbers, computed the way the forum did.
    logits_mean_diff = torch.mean(logits_b - logits_a).item()
    feats_sum_diff = (feats_b - feats_a).sum().item()
    # The largest difference at the logits, exact in float64 (equal values count as 0,
    # NaN is left out).
    a64, b64 = logits_a.double().cpu(), logits_b.double().cpu()
    diff = torch.where(a64 == b64, 0.0, (a64 - b64).abs())
    diff = diff[~diff.isnan()]
    logits_max_abs_diff = diff.max().item() if diff.numel() else float("nan")
    {prints}
'''
