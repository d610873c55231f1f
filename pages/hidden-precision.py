"""Hidden precision: was a float32 run really float32? Real oneDNN bf16 beside emulation."""

import pandas as pd
import streamlit as st

import explorer.ui  # noqa: F401 - first: every module at once (explorer/ui/__init__.py)
from explorer import machine
from explorer.config import preset
from explorer.effective import BITS_NAME
from explorer.precision_charts import side_bound_figure
from explorer.ui.cache import run_or_explain
from explorer.ui.navigation import require_app_entry
from explorer.ui.render import show_figure
from explorer.ui.state import safe_text

require_app_entry("pages/hidden-precision.py")  # legacy pages/ routing must not bypass app.py

st.title("Hidden precision")
st.markdown("""
A run can say float32 and still multiply in fewer bits: TF32 in cuDNN convolutions on
Ampere and newer GPUs (PyTorch's default), bfloat16 in oneDNN on CPUs where
`torch.backends.mkldnn.matmul.fp32_precision = "bf16"`. The explorer checks each side on
its own: its layer output against the exact result **for its own input**, as a share of
the worst-case float32 bound (above 1: the products were rounded more coarsely), and
the error's statistics against simulations of each operand format on the same layer and
input, which name the format: 24 bits (float32), 11 (TF32 or float16), 8 (bfloat16).
""")

honoured = machine.cpu_bf16_honoured()
isa = machine.onednn_isa()
st.subheader("This machine")
if honoured["matmul"] or honoured["conv"]:
    st.success(safe_text(
        f"This CPU (oneDNN: {isa}) really computes in bfloat16 when asked: matmul "
        f"{'yes' if honoured['matmul'] else 'no'}, 1x1 convolution "
        f"{'yes' if honoured['conv'] else 'no'} (a probe, run once: a small matmul and "
        f"convolution with the setting on break the float32 bound).", limit=800))
else:
    st.info(safe_text(
        f"This CPU (oneDNN: {isa}) ignores oneDNN's bf16 setting: a probe with it on found "
        "float32 results, within the float32 bound. oneDNN may keep float32 where it has no "
        "bfloat16 kernel for a shape (CPUs with AMX, and many with AVX512-BF16, honour it). "
        "The 'real' run below therefore stays at 24 bits here, and the emulated one shows "
        "what real bfloat16 would do.", limit=800))

real = run_or_explain(preset("real_bf16"))
emulated = run_or_explain(preset("seed", emulate_a="bf16"))
plain = run_or_explain(preset("seed"))
if real is None or emulated is None or plain is None:
    st.stop()

st.subheader("Side A (nn.Linear), the forum network: real vs emulated bfloat16")
runs = {"float32 (as is)": plain, "oneDNN bf16 (real)": real,
        "operands rounded to bf16 (emulated)": emulated}
show_figure(side_bound_figure(runs, "a"), key="hidden-a")


def _bits(bits):
    return f"{bits} ({BITS_NAME[bits]})" if bits else "no format fits"


rows = []
for label, report in runs.items():
    for t in report.taps:
        if t.stage == "pre":
            rows.append({"run": label, "layer": t.layer, "fan-in": t.fan_in,
                         "A error / worst-case bound": t.a_bound_ratio,
                         "A error / probabilistic bound": t.a_prob_bound_ratio,
                         "A behaves as (bits)": _bits(t.a_effective_bits)})
table = pd.DataFrame(rows)
st.dataframe(table, hide_index=True, width="stretch",
             column_config={c: st.column_config.NumberColumn(format="%.3g")
                            for c in ("A error / worst-case bound",
                                      "A error / probabilistic bound")})
summary = ", ".join(f"{label}: {_bits(r.summary.a_effective_bits)}"
                    for label, r in runs.items())
st.caption(safe_text(
    f"Side A's effective bits on this machine: {summary}. Where the CPU honours bf16, the "
    "real and emulated rows agree layer by layer: that checks the emulation against the "
    "hardware. The probabilistic bound (Higham and Mary 2019) is about lam sqrt(n) u "
    "(|W||x| + |b|), lam about 6, and holds per element with probability 1 - 1e-6 when "
    "rounding errors are independent: typical float32 rounding uses a sizeable share of "
    "it, and a small share of the worst-case bound n u (|W||x| + |b|).", limit=800))
st.markdown(f"**Verdict, real run:** {safe_text(real.verdict.headline, limit=600)}")
st.page_link("pages/explorer.py", label="Open the real-bf16 run in the Explorer",
             icon=":material/open_in_new:", query_params={"preset": "real_bf16"})
st.page_link("pages/explorer.py", label="Open the emulated run in the Explorer",
             icon=":material/open_in_new:", query_params={"emulate_a": "bf16"})
