"""The forum case: the question, a script that reproduces it, what it prints, and why."""

import pandas as pd
import streamlit as st

import explorer.ui  # noqa: F401 - first: every module at once (explorer/ui/__init__.py)
from explorer.charts import fmt
from explorer.config import ExperimentConfig, preset
from explorer.export import expected_output, reproduce_script
from explorer.ui.cache import run_or_explain
from explorer.ui.navigation import require_app_entry
from explorer.ui.render import show_figure
from explorer.ui.state import safe_text

require_app_entry("pages/forum.py")  # legacy pages/ routing must not bypass app.py

st.title("The forum case")

st.markdown("""
**The question.** Someone on the PyTorch forum wrote the same small MLP twice: once with
`nn.Linear` layers, once with 1x1 `nn.Conv2d` layers applied to the input reshaped to
(batch, channels, samples, 1). Both networks got exactly the same parameters: every weight
and every bias set to 1, ELU between the layers, 256 inputs going through 64, 128 and 256
hidden units to 4 outputs, a batch of 16 with 5 samples each, seed 2010, on a GPU. In
theory a 1x1 convolution *is* a fully connected layer, yet the two networks printed
different numbers. Was there a bug? Was the reshaping wrong?

No. The replies guessed at the order of operations and at magnitudes; below, the same
experiment runs live and each part of the answer is measured.
""")

seed_config = preset("seed")
report = run_or_explain(seed_config)
if report is None:
    st.stop()

st.header("1. A script that reproduces it")
st.markdown("Generated from the settings, in the spirit of the original: plain `torch.nn`, "
            "both networks, identical parameters. It runs on the CPU; set `DEVICE` to "
            "`cuda:0` to run it where the forum did.")
st.code(reproduce_script(seed_config), language="python", height=420)
st.download_button("Download the script", data=reproduce_script(seed_config),
                   file_name="forum_case.py", mime="text/x-python", on_click="ignore",
                   help="Torch only; prints the same three numbers as below.")

st.header("2. What it prints on this machine")
st.code(expected_output(report), language="text")
env = report.environment
st.caption(safe_text(
    f"Computed just now by the explorer's library with torch {env.get('torch_version')} on "
    f"{env.get('device')} ({env.get('device_name')}; oneDNN uses {env.get('onednn_isa')}, "
    f"{env.get('threads')} threads); the script prints the same numbers here. These exact "
    "numbers are a fact about this machine, not a constant: the CPU's instruction set and "
    "the thread count choose the kernel, and so the order of the additions. Another CPU, "
    "or this one with another thread count, prints other, equally correct numbers, and "
    "every figure below, sometimes even the verdict, can come out differently there.",
    limit=800))

st.header("3. What explains it")
s = report.summary
taps = {t.name: t for t in report.taps}
first, logits = taps["L1 pre"], report.taps[-1]
later = [t for t in report.taps if t.stage == "pre" and t.layer > 1]

ROUNDING_CODES = ("rounding", "magnitude", "cancellation", "identical")
st.subheader("Rounding, and nothing else" if report.verdict.code in ROUNDING_CODES
             else "What this machine shows")
st.markdown(safe_text(
    f"Linear runs a matrix multiplication (GEMM), the 1x1 convolution runs a convolution "
    f"kernel. Both sum the same products, but in different orders, and floating-point "
    f"addition is not associative: each order rounds differently. How far apart two orders "
    f"can land is bounded: for a sum of n products, gamma_(n+1) x (|W||x| + |b|), with "
    f"gamma_k = k u / (1 - k u) and u = 2^-24 in float32. On this machine, feeding both "
    f"layers the same input, the largest difference at any layer uses "
    f"{100 * (s.max_bound_ratio or 0):.2g}% of twice that bound, and each network on its "
    f"own stays within {100 * max(s.a_max_bound_ratio or 0, s.b_max_bound_ratio or 0):.2g}% "
    f"of the bound against the exact result. The verdict here: {report.verdict.headline}",
    limit=2000))

st.subheader("Layer 1: cancellation makes a few elements look bad")
worst_there = (
    f"Here, the element where A and B differ most is {fmt(first.max_ulp_diff)} ULPs apart "
    f"(relative difference {fmt(first.worst_ulp_rel_diff)}) and its condition number is "
    f"{fmt(first.worst_ulp_condition)}"
    if first.worst_ulp_condition is not None else
    "Here A and B agree at every element of layer 1")
st.markdown(safe_text(
    f"Each first-layer output is 1 + the sum of 256 standard-normal inputs. Typically that "
    f"sum is around 16 in size (on this input the median condition number (|W||x| + |b|) / "
    f"|Wx + b| is {fmt(first.condition_median)}), but for a few rows positive and negative "
    f"terms almost cancel and the result lands near zero: there the condition number "
    f"reaches {fmt(first.condition_max)}. The rounding error is set by the size of the "
    f"terms, not of the result, so a tiny rounding difference is a large relative one "
    f"there. {worst_there}, while the layer uses "
    f"{100 * (first.bound_ratio or 0):.2g}% of its rounding bound.", limit=2000))

st.subheader("Later layers: the difference is carried, not made")
st.markdown(safe_text(
    "From layer 2 on every weight is 1 and (after ELU) the large values are positive, so "
    "each layer adds up positive numbers: no cancellation, condition numbers near 1 ("
    + ", ".join(f"layer {t.layer}: {fmt(t.condition_max)}" for t in later)
    + "). Such sums are accurate, so each layer adds little new error; it passes on the "
    "relative difference it was given: "
    + ", ".join(f"layer {t.layer}: {fmt(t.max_rel_diff)}" for t in later)
    + ". Fed identical inputs, the last layer alone would differ by at most "
    f"{fmt(logits.local_max_abs_diff)}; the total at the logits, {fmt(logits.max_abs_diff)}, "
    + ("is inherited from earlier layers."
       if logits.local_max_abs_diff is not None
       and logits.max_abs_diff > 4 * logits.local_max_abs_diff
       else "is of the same size: on this machine the last layer's own rounding matters too."),
    limit=2000))

st.subheader("Magnitude: a big absolute number that is small")
st.markdown(safe_text(
    f"With all weights 1 the values grow by roughly the width at every layer and reach "
    f"{fmt(logits.max_abs_value)} at the logits. There the largest absolute difference on "
    f"this machine, {fmt(logits.max_abs_diff)}, is between values of about "
    f"{fmt(logits.worst_abs_value)}: a relative difference of "
    f"{fmt(logits.worst_abs_rel_diff)} ({fmt(logits.worst_abs_ulp_diff)} ULPs). "
    f"That is why the forum's mean(B - A) = {s.logits_mean_diff:.4g} and sum of feature "
    f"differences = {s.feats_sum_diff:.4g} look alarming: they are sums over values near "
    f"1e5 to 1e8.", limit=2000))

table = pd.DataFrame([{
    "tap": t.name,
    "max |A|": t.max_abs_value,
    "max |A-B|": t.max_abs_diff,
    "max relative": t.max_rel_diff,
    "max ULP": t.max_ulp_diff,
    "condition (max)": t.condition_max,
    "bound used (local)": t.bound_ratio,
} for t in report.taps])
st.dataframe(table, hide_index=True, width="stretch",
             column_config={c: st.column_config.NumberColumn(format="%.3g")
                            for c in table.columns if c != "tap"})

st.subheader("On a GPU: TF32 convolutions break the bound")
tf32 = run_or_explain(preset("tf32_conv"))
if tf32 is not None:
    st.markdown(safe_text(
        "PyTorch lets cuDNN convolutions use TF32 on Ampere and newer GPUs by default "
        "(torch.backends.cudnn.conv.fp32_precision = 'tf32'), but not matmuls, so on the "
        "forum's GPU the convolution network most likely multiplied with 10-bit mantissas "
        "while the Linear one did not. Emulated on this machine (conv operands rounded to "
        f"TF32, float32 accumulation): the local difference reaches "
        f"{fmt(tf32.summary.max_bound_ratio)}x the float32 bound, and at the logits B is "
        f"off the float64 reference by up to {fmt(tf32.summary.b_logits_max_rel_err_vs_ref)} "
        f"(relative), A by {fmt(tf32.summary.a_logits_max_rel_err_vs_ref)}. The mean "
        f"difference at the logits becomes {tf32.summary.logits_mean_diff:.4g}.",
        limit=2000))
    from explorer.charts import bound_ratio_figure

    show_figure(bound_ratio_figure(tf32, baseline=report), key="forum-tf32-bound")
    st.page_link("pages/explorer.py", label="Open this in the Explorer (Emulation B = tf32)",
                 icon=":material/open_in_new:", query_params={"emulate_b": "tf32"})

st.subheader("Layout is not the cause")
exact_config = ExperimentConfig(activation="identity", input_distribution="integers",
                                depth=2)
exact = run_or_explain(exact_config)
if exact is not None:
    biggest = max(t.max_abs_value for t in exact.taps)
    st.markdown(safe_text(
        "Reshaping to (B, C, S, 1) applies the same weights at every sample position, "
        "exactly as Linear does on the last dimension; the permutes move values without "
        "touching them. Proof by experiment: with small integer inputs and no activation, "
        f"every sum is exact in float32 (the values stay below 2^24; the largest is "
        f"{fmt(biggest)}), and then: {exact.verdict.headline}", limit=2000))
    st.page_link("pages/explorer.py", label="Open this in the Explorer",
                 icon=":material/open_in_new:",
                 query_params={"activation": "identity", "input_distribution": "integers",
                               "depth": "2"})

st.subheader("The thread's fix: sigmoid and weights 0.001")
squashed = run_or_explain(preset("squashed"))
if squashed is not None:
    ss = squashed.summary
    st.markdown(safe_text(
        f"Squashing the values makes the absolute numbers tiny (mean difference at the "
        f"logits {ss.logits_mean_diff:.3g}, largest {fmt(ss.logits_max_abs_diff)}), which "
        f"is why it looked like a fix. The relative picture is the same kind of rounding: "
        f"the largest relative difference is {fmt(ss.max_rel_diff)}, again within the "
        f"bound ({100 * (ss.max_bound_ratio or 0):.2g}% used).", limit=2000))
    st.page_link("pages/explorer.py", label="Open this in the Explorer",
                 icon=":material/open_in_new:", query_params={"preset": "squashed"})
