"""How to read this: every metric in one line with its formula, and what each chart shows."""

import streamlit as st

import explorer.ui  # noqa: F401 - first: every module at once (explorer/ui/__init__.py)
from explorer.charts import COLORS
from explorer.config import FIELD_TYPES
from explorer.ui.navigation import require_app_entry
from explorer.ui.state import VIEW_KEYS
from explorer.ui.sweep_state import URL_KEYS as SWEEP_URL_KEYS

require_app_entry("pages/how-to-read.py")  # legacy pages/ routing must not bypass app.py

st.title("How to read this")

st.markdown("""
A and B are the same network written two ways (say `nn.Linear` and a 1x1 `nn.Conv2d`),
fed identical parameters and input. A **tap** is one layer output: *pre* is the affine
output W x + b of layer l, *post* is that after the activation. The logits are the last
pre tap. R is the same network computed in higher precision (float64), the reference.
Every difference is taken after converting to float64, which is exact.
""")

st.header("The metrics")
# (name, formula in LaTeX, what it tells you)
METRICS = [
    ("absolute difference", r"$\lvert A - B \rvert$",
     "how far apart, in the values' own units"),
    ("relative difference",
     r"$\lvert A - B \rvert / \max(\lvert A\rvert, \lvert B\rvert)$, 0 where $A = B$",
     "how far apart as a fraction of the value; compare it with u"),
    ("unit roundoff u",
     r"$2^{-p}$: $2^{-24}$ float32, $2^{-11}$ TF32 and float16, $2^{-8}$ bfloat16, "
     r"$2^{-53}$ float64",
     "the relative error of a single rounding"),
    ("ULP distance", r"$\lvert \mathrm{ord}(A) - \mathrm{ord}(B) \rvert$",
     "how many representable numbers lie between A and B (ord: the bit pattern read as a "
     "monotone integer)"),
    ("bits of error", r"$\log_2(1 + \text{ULPs})$",
     "how many low bits disagree (Herbie's unit)"),
    ("error vs reference",
     r"$\lvert X - R \rvert / \lvert R \rvert$, or $\lvert X - R \rvert$ where $R = 0$",
     "how wrong A (or B) is, not just how different"),
    ("magnitude", r"max, mean and RMS of $\lvert A \rvert$",
     "how big the values are: big values make tiny relative errors look large"),
    ("headroom", r"$\log_2(\text{finfo.max} / \max\lvert A\rvert)$",
     "bits left before overflow to inf"),
    ("rounding bound",
     r"$\gamma_{n+1}(\lvert W\rvert\lvert x\rvert + \lvert b\rvert)$, "
     r"$\gamma_k = k u / (1 - k u)$, n = fan-in",
     "the worst error of a dot product summed in any order"),
    ("bound ratio", r"$\lvert A - B \rvert_{\text{local}} / (2 \cdot \text{bound})$",
     "up to 1: explained by rounding; above 1: one side computes in lower precision"),
    ("condition number",
     r"$(\lvert W\rvert\lvert x\rvert + \lvert b\rvert) / \lvert W x + b \rvert$",
     "large where big terms cancel: there small errors become large relative errors"),
    ("local vs propagated",
     "local: both layers fed the same input; propagated: each fed its own network's output",
     "what this layer adds vs what it inherited"),
]
st.markdown("| metric | formula | in one line |\n| --- | --- | --- |\n" + "\n".join(
    f"| {name} | {formula} | {meaning} |" for name, formula, meaning in METRICS))

st.header("The charts")
st.markdown(f"""
Colours are fixed everywhere: **A** is blue ({COLORS['a']}), **B** orange ({COLORS['b']}),
the **reference** grey, and differences between A and B purple. A *pinned* run is drawn
in the same colours, dashed. The y axes are logarithmic: a value of exactly 0 cannot be
drawn on them, so zeros sit on a floor below the data as hollow markers, and the hover
says "0 (identical)". Hover any point for the exact value, its unit, and the layer's width
and fan-in.

- **Absolute difference**: max and mean of |A - B| per tap. Grows with the magnitude of
  the values, so on its own it says little.
- **Relative difference**: max and median of |A - B| / max(|A|, |B|), with dotted lines at
  float32's unit roundoff 2^-24 and TF32's 2^-11. Near 2^-24 is ordinary float32 rounding;
  near 2^-11 means 10-bit mantissas somewhere.
- **Activation magnitudes**: max |A|, max |B| and max |reference| per tap, with the dtype's
  largest finite value: above that line values overflow to inf.
- **Share of the rounding bound**: the local bound ratio per layer (pre taps only), with the
  line at 1. Below it, the difference is what float rounding in some order can produce.
- **Error vs the reference**: how far A and B each are from the float64 result. When one
  side is far above the other, that side computes in lower precision.
- **Bits of error**: for one tap, how many elements differ by 0, 1, 2, ... bits. Ordinary
  rounding sits in the first few bins; cancellation adds a thin tail to the right.

The **verdict** at the top of the Explorer puts the numbers into one sentence: identical,
equivalent up to rounding (and what makes it visible: cancellation or magnitude), reduced
precision (the bound is broken), or non-finite values.

**Sharing.** Every setting is in the page's address, so copying the URL shares the exact
view, including a pinned run. A link with a value this machine cannot use (a GPU it lacks,
a typo) opens with a warning naming that value and the default used instead.
""")
st.markdown(
    "The names a link can use. The Explorer: "
    + ", ".join(f"`{k}`" for k in ("preset", *FIELD_TYPES, *VIEW_KEYS))
    + ". Sweeps: " + ", ".join(f"`{k}`" for k in SWEEP_URL_KEYS)
    + ", and the same settings for the sweep's base. A link of more than 1000 parameters "
      "is ignored whole (Streamlit's limit), and the page says so.")
