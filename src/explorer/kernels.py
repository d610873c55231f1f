"""numba kernels for the fused per-tap pass (see explorer.tapstats, which owns the policy).

Imported only by explorer.tapstats, and only when numba is installed: nothing else in the
package may import this module (importing it compiles or loads the kernels).

One call of ``fused_pass`` reads each input array of a tap once. Per *unit* (a node of
numpy's pairwise-summation tree with at most UNIT elements) it evaluates every series of the
tap's program (explorer.tapstats.Program) into a scratch matrix that stays in the core's
cache, then updates each series' statistics:

* the largest value as an int64 key (the bit pattern without the sign: a non-negative
  double orders like its bits, +inf above every finite value and NaN above +inf). A key
  at or above +inf's tells the caller that the series holds inf or NaN; such a series is
  then computed in full (``materialize``) and summarised exactly as the torch engine does,
  so the fast path below only ever has to be right for finite values;
* sums and sums of squares in *numpy's pairwise order*: numpy's pairwise_sum (numpy/_core/
  src/umath/loops_utils.h) adds 8 running sums over at most 128 elements and otherwise
  halves the range (rounded down to a multiple of 8); tasks and units are nodes of that
  same tree and ``_pairwise`` repeats it inside a unit, so a sum here is bit-identical to
  ``np.sum`` of the same values;
* a histogram of floor(value), clipped to [0, bins - 1];
* for each quantile bracket (lo, hi) of a series: how many values lie below lo, equal lo,
  strictly between, equal hi; the ones strictly between are copied out (up to a capacity).

All arithmetic is IEEE double without fast-math (no reassociation, no FMA contraction),
and ``error_model="numpy"`` makes x/0 give inf or NaN as torch and numpy do.
"""

from __future__ import annotations

import math
import os

# Intel's SVML would give vectorised log2 a different last bit than the C library's log2,
# which the pure-torch fallback reproduces; keep numba on the C library everywhere.
os.environ.setdefault("NUMBA_DISABLE_INTEL_SVML", "1")

import numpy as np  # noqa: E402
from numba import njit, prange  # noqa: E402

BLOCK = 128  # numpy's PW_BLOCKSIZE: the leaf size of its pairwise summation
# Series are evaluated for up to UNIT elements at a time, so the per-series cost of a step
# (views, dispatch) is spread over many elements while the scratch rows stay in cache.
UNIT = 512
CHUNK = 32  # quantile candidates are looked for only in chunks whose count says so
# log2(1 + k) for integers k below this, from the C library at import: ULP counts are
# integers, mostly small, and a table read is far cheaper than a log2 call.
LOG2_TABLE_SIZE = 4096  # as explorer.metrics.LOG2P1_TABLE_SIZE
LOG2P1_TABLE = np.array([math.log2(1.0 + k) for k in range(LOG2_TABLE_SIZE)])

# Opcodes: keep in step with explorer.tapstats.OPS.
OP_COPY, OP_ABS, OP_DIFF, OP_MAXABS, OP_RATIO, OP_ERR, OP_ULP, OP_LOG2P1, OP_TOLFAIL, \
    OP_SCALE = range(10)
# Statistic flags per series.
STAT_MAX, STAT_SUM, STAT_SUMSQ, STAT_HIST, STAT_ARGMAX = 1, 2, 4, 8, 16
MAGNITUDE = 0x7FFFFFFFFFFFFFFF
INF_KEY = 0x7FF0000000000000  # +inf's bits; a larger key is a NaN
NO_UPPER = 0x7FFFFFFFFFFFFFFF  # a bracket without an upper end

_JIT = {"error_model": "numpy", "cache": True, "nogil": True}


@njit(**_JIT)
def _leaf_sum(v, start, n, square):
    """numpy's pairwise_sum for n <= 128 values v[start:start + n] (or their squares)."""
    if n < 8:
        res = -0.0
        for i in range(start, start + n):
            x = v[i]
            res += x * x if square else x
        return res
    if square:
        r0 = v[start] * v[start]
        r1 = v[start + 1] * v[start + 1]
        r2 = v[start + 2] * v[start + 2]
        r3 = v[start + 3] * v[start + 3]
        r4 = v[start + 4] * v[start + 4]
        r5 = v[start + 5] * v[start + 5]
        r6 = v[start + 6] * v[start + 6]
        r7 = v[start + 7] * v[start + 7]
        m = start + n - n % 8
        for i in range(start + 8, m, 8):
            r0 += v[i] * v[i]
            r1 += v[i + 1] * v[i + 1]
            r2 += v[i + 2] * v[i + 2]
            r3 += v[i + 3] * v[i + 3]
            r4 += v[i + 4] * v[i + 4]
            r5 += v[i + 5] * v[i + 5]
            r6 += v[i + 6] * v[i + 6]
            r7 += v[i + 7] * v[i + 7]
        res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
        for i in range(m, start + n):
            res += v[i] * v[i]
        return res
    r0, r1, r2, r3 = v[start], v[start + 1], v[start + 2], v[start + 3]
    r4, r5, r6, r7 = v[start + 4], v[start + 5], v[start + 6], v[start + 7]
    m = start + n - n % 8
    for i in range(start + 8, m, 8):
        r0 += v[i]
        r1 += v[i + 1]
        r2 += v[i + 2]
        r3 += v[i + 3]
        r4 += v[i + 4]
        r5 += v[i + 5]
        r6 += v[i + 6]
        r7 += v[i + 7]
    res = ((r0 + r1) + (r2 + r3)) + ((r4 + r5) + (r6 + r7))
    for i in range(m, start + n):
        res += v[i]
    return res


@njit(**_JIT)
def _pairwise(v, start, n, square):
    """numpy's pairwise_sum of v[start:start + n] (or of its squares).

    numpy recurses: sum(first half) + sum(second half). Recursive functions do not survive
    numba's on-disk cache (loading one crashes), so the recursion is an explicit stack of
    (start, n, stage) frames with the left half's sum kept per frame.
    """
    if n <= BLOCK:
        return _leaf_sum(v, start, n, square)
    frame_start = np.empty(64, dtype=np.int64)
    frame_n = np.empty(64, dtype=np.int64)
    frame_stage = np.zeros(64, dtype=np.int64)
    left = np.zeros(64)
    result = 0.0
    sp = 0
    frame_start[0] = start
    frame_n[0] = n
    while True:
        size = frame_n[sp]
        done = False
        if size <= BLOCK:
            result = _leaf_sum(v, frame_start[sp], size, square)
            done = True
        else:
            half = size // 2
            half -= half % 8
            if frame_stage[sp] == 0:
                frame_stage[sp] = 1
                frame_start[sp + 1] = frame_start[sp]
                frame_n[sp + 1] = half
                frame_stage[sp + 1] = 0
                sp += 1
            elif frame_stage[sp] == 1:
                left[sp] = result  # the first half's sum
                frame_stage[sp] = 2
                frame_start[sp + 1] = frame_start[sp] + half
                frame_n[sp + 1] = size - half
                frame_stage[sp + 1] = 0
                sp += 1
            else:
                result = left[sp] + result
                done = True
        if done:
            if sp == 0:
                return result
            sp -= 1


@njit(**_JIT)
def _safe_ratio(num, den, out, n):
    """metrics.safe_ratio element by element: 0 where num == 0, inf where both are
    infinite, NaN where either is NaN, else num / den."""
    for i in range(n):
        a = num[i]
        b = den[i]
        r = a / b
        r = 0.0 if a == 0.0 else r
        r = math.inf if (abs(a) == math.inf) & (abs(b) == math.inf) else r
        r = math.nan if (a != a) | (b != b) else r
        out[i] = r


@njit(**_JIT)
def _eval_block(narrow, bits, wide, ops, params, start, n, rows):
    """Fill rows[k, :n] for every input (upcast to float64) and every series, over the
    elements [start, start + n) (n <= UNIT)."""
    nn = len(narrow)
    nw = len(wide)
    # Slices first: indexing src[start + i] would make numba check for negative indices
    # per element, which turns the loads into gathers.
    for k in range(nn):
        if narrow[k].size:
            src = narrow[k][start:start + n]
            row = rows[k]
            for i in range(n):
                row[i] = src[i]
    for k in range(nw):
        if wide[k].size:
            src = wide[k][start:start + n]
            row = rows[nn + k]
            for i in range(n):
                row[i] = src[i]
    base = nn + nw
    for s in range(ops.shape[0]):
        op = ops[s, 0]
        out = rows[base + s]
        x = rows[ops[s, 1]]
        if op == OP_COPY:
            for i in range(n):
                out[i] = x[i]
        elif op == OP_ABS:
            for i in range(n):
                out[i] = abs(x[i])
        elif op == OP_DIFF:  # |x - y|, 0 where equal (also inf == inf)
            y = rows[ops[s, 2]]
            for i in range(n):
                d = abs(x[i] - y[i])
                out[i] = 0.0 if x[i] == y[i] else d
        elif op == OP_MAXABS:  # torch.maximum(|x|, |y|): NaN if either is NaN
            y = rows[ops[s, 2]]
            for i in range(n):
                ax = abs(x[i])
                ay = abs(y[i])
                m = ax if ax > ay else ay
                out[i] = math.nan if (ax != ax) | (ay != ay) else m
        elif op == OP_RATIO:
            _safe_ratio(x, rows[ops[s, 2]], out, n)
        elif op == OP_ERR:  # err_vs_reference: diff where r == 0, else diff / |r|
            r = rows[ops[s, 2]]
            _safe_ratio(x, rows[ops[s, 3]], out, n)
            for i in range(n):
                out[i] = x[i] if r[i] == 0.0 else out[i]
        elif op == OP_ULP:  # ordinal distance in the compute dtype (metrics.ulp_diff)
            ia = ops[s, 1]
            ib = ops[s, 2]
            mask = ops[s, 3]
            ba = bits[ia][start:start + n]
            bb = bits[ib][start:start + n]
            y = rows[ib]
            for i in range(n):
                p = np.int64(ba[i])
                q = np.int64(bb[i])
                ma = p & mask
                mb = q & mask
                same_sign = np.float64(abs(ma - mb))
                opposite = np.float64(ma) + np.float64(mb)
                u = opposite if (p ^ q) < 0 else same_sign
                out[i] = math.nan if (x[i] != x[i]) | (y[i] != y[i]) else u
        elif op == OP_LOG2P1:
            # Table reads for every element (branch-free, vectorised), then the C library
            # only where the table has no entry: as a select, LLVM would call log2 always.
            missing = 0
            for i in range(n):
                u = x[i]
                small = (u >= 0.0) & (u < LOG2_TABLE_SIZE)
                index = np.int64(u) if small else 0
                exact = small & (np.float64(index) == u)
                out[i] = LOG2P1_TABLE[index]
                missing += not exact
            if missing:
                for i in range(n):
                    u = x[i]
                    if not ((u >= 0.0) & (u < LOG2_TABLE_SIZE) and np.float64(np.int64(u)) == u):
                        out[i] = math.log2(1.0 + u)
        elif op == OP_TOLFAIL:  # 1 where |B - A| <= atol + rtol |A| fails (NaN fails)
            y = rows[ops[s, 2]]
            atol = params[s, 0]
            rtol = params[s, 1]
            for i in range(n):
                out[i] = 0.0 if x[i] <= atol + rtol * y[i] else 1.0
        elif op == OP_SCALE:
            c = params[s, 0]
            for i in range(n):
                out[i] = c * x[i]


@njit(**_JIT)
def _unit_stats(rows, base, flags, hist_slot, n, unit_start, keys, key_slot, maxkey, argmax,
                unit_sums, hist, bq_series, bq_lo, bq_hi, bq_counts, cand, cand_base, cap,
                cand_pos, chunk_inside):
    """Update the statistics of every series with one unit's values (see module doc)."""
    n_series = flags.shape[0]
    for s in range(n_series):
        f = flags[s]
        if f == 0:
            continue
        v = rows[base + s]
        vk = v.view(np.int64)
        m = -1
        slot = key_slot[s]
        if slot >= 0:
            kr = keys[slot]
            for i in range(n):
                k = vk[i] & MAGNITUDE
                kr[i] = k
                m = k if k > m else m
        else:
            for i in range(n):
                k = vk[i] & MAGNITUDE
                m = k if k > m else m
        if m > maxkey[s]:
            maxkey[s] = m
            if f & STAT_ARGMAX:  # the first element holding the new maximum
                for i in range(n):
                    if vk[i] & MAGNITUDE == m:
                        argmax[s] = unit_start + i
                        break
        if f & STAT_SUM:
            unit_sums[s] = _pairwise(v, 0, n, False)
        if f & STAT_SUMSQ:
            unit_sums[n_series + s] = _pairwise(v, 0, n, True)
        if f & STAT_HIST:
            # Four interleaved copies: equal neighbours would otherwise wait on each other.
            h = hist[hist_slot[s]]
            top = h.shape[1] - 1
            for i in range(n):
                x = v[i]
                b = math.floor(x) if x == x else 0.0
                b = 0.0 if b < 0.0 else b
                b = top if b > top else b
                h[i & 3, np.int64(b)] += 1
    for q in range(bq_series.shape[0]):
        s = bq_series[q]
        kr = keys[key_slot[s]]
        lo = bq_lo[q]
        hi = bq_hi[q]
        below = 0
        at_lo = 0
        inside = 0
        at_hi = 0
        n_chunks = (n + CHUNK - 1) // CHUNK
        for c in range(n_chunks):
            chunk = kr[c * CHUNK:min(n, (c + 1) * CHUNK)]
            here = 0
            for i in range(chunk.size):
                k = chunk[i]
                below += k < lo
                at_lo += k == lo
                here += (k > lo) & (k < hi)
                at_hi += k == hi
            chunk_inside[c] = here
            inside += here
        bq_counts[q, 0] += below
        bq_counts[q, 1] += at_lo
        bq_counts[q, 2] += inside
        bq_counts[q, 3] += at_hi
        if inside:
            # Copy out the values strictly inside, visiting only chunks that hold one.
            v = rows[base + s]
            pos = cand_pos[q]
            out = cand[q][cand_base:cand_base + cap]
            for c in range(n_chunks):
                if chunk_inside[c] == 0:
                    continue
                for i in range(c * CHUNK, min(n, (c + 1) * CHUNK)):
                    k = kr[i]
                    if (k > lo) & (k < hi):
                        if pos < cap:
                            out[pos] = v[i]
                        pos += 1
            cand_pos[q] = pos


@njit(**_JIT)
def _task(narrow, bits, wide, ops, params, flags, hist_slot, key_slot, n_keys,
          start, length, maxkey, argmax, sums, hist, bq_series, bq_lo, bq_hi, bq_counts,
          cand, cand_base, cap, cand_pos):
    """One subtree of numpy's pairwise summation over [start, start + length).

    An explicit stack replaces numpy's recursion down to nodes of at most UNIT elements,
    which are evaluated at once (their sums by _pairwise); each frame holds (start, n,
    stage) and the sums of its children, so the additions happen in numpy's order.
    """
    n_series = ops.shape[0]
    base = len(narrow) + len(wide)
    rows = np.empty((base + n_series, UNIT))
    keys = np.empty((max(n_keys, 1), UNIT), dtype=np.int64)
    chunk_inside = np.empty(UNIT // CHUNK + 1, dtype=np.int64)
    width = 2 * n_series
    frame_start = np.empty(64, dtype=np.int64)
    frame_n = np.empty(64, dtype=np.int64)
    frame_stage = np.zeros(64, dtype=np.int64)
    value = np.zeros((64, width))
    left = np.zeros((64, width))
    sp = 0
    frame_start[0] = start
    frame_n[0] = length
    frame_stage[0] = 0
    while True:
        n = frame_n[sp]
        done = False
        if n <= UNIT:
            _eval_block(narrow, bits, wide, ops, params, frame_start[sp], n, rows)
            _unit_stats(rows, base, flags, hist_slot, n, frame_start[sp], keys, key_slot,
                        maxkey, argmax, value[sp], hist, bq_series, bq_lo, bq_hi, bq_counts,
                        cand, cand_base, cap, cand_pos, chunk_inside)
            done = True
        else:
            half = n // 2
            half -= half % 8
            if frame_stage[sp] == 0:
                frame_stage[sp] = 1
                frame_start[sp + 1] = frame_start[sp]
                frame_n[sp + 1] = half
                frame_stage[sp + 1] = 0
                sp += 1
            elif frame_stage[sp] == 1:
                for j in range(width):
                    left[sp, j] = value[sp + 1, j]
                frame_stage[sp] = 2
                frame_start[sp + 1] = frame_start[sp] + half
                frame_n[sp + 1] = n - half
                frame_stage[sp + 1] = 0
                sp += 1
            else:
                for j in range(width):
                    value[sp, j] = left[sp, j] + value[sp + 1, j]
                done = True
        if done:
            if sp == 0:
                break
            sp -= 1
    for j in range(width):
        sums[j] = value[0, j]


@njit(parallel=True, **_JIT)
def fused_pass(narrow, bits, wide, ops, params, flags, hist_slot, key_slot, n_keys,
               task_start, task_len, hist_bins, n_hist, bq_series, bq_lo, bq_hi, cap):
    """Every statistic of every series over all tasks (see the module docstring).

    Returns per task: max keys (T, S), the first index holding the task's maximum (T, S;
    for series with STAT_ARGMAX), pairwise sums and sums of squares (T, 2S),
    histograms (T, H, 4, bins), bracket counts (T, Q, 4: below, at lo, strictly inside, at
    hi; inside may exceed cap), and the candidates (Q, T * cap).
    """
    n_tasks = task_start.shape[0]
    n_series = ops.shape[0]
    n_q = bq_series.shape[0]
    maxkey = np.full((n_tasks, n_series), -1, dtype=np.int64)
    argmax = np.full((n_tasks, n_series), -1, dtype=np.int64)
    sums = np.zeros((n_tasks, 2 * n_series))
    hist = np.zeros((n_tasks, max(n_hist, 1), 4, hist_bins), dtype=np.int64)
    bq_counts = np.zeros((n_tasks, n_q, 4), dtype=np.int64)
    cand = np.empty((n_q, n_tasks * cap))
    for t in prange(n_tasks):
        cand_pos = np.zeros(n_q, dtype=np.int64)
        _task(narrow, bits, wide, ops, params, flags, hist_slot, key_slot, n_keys,
              task_start[t], task_len[t], maxkey[t], argmax[t], sums[t], hist[t], bq_series,
              bq_lo, bq_hi, bq_counts[t], cand, t * cap, cap, cand_pos)
    return maxkey, argmax, sums, hist, bq_counts, cand


@njit(parallel=True, **_JIT)
def materialize(narrow, bits, wide, ops, params, wanted, range_start, range_len):
    """Values of the series ``wanted`` over the given ranges, concatenated: (W, sum len)."""
    n_ranges = range_start.shape[0]
    offsets = np.zeros(n_ranges + 1, dtype=np.int64)
    for r in range(n_ranges):
        offsets[r + 1] = offsets[r] + range_len[r]
    out = np.empty((wanted.shape[0], offsets[n_ranges]))
    base = len(narrow) + len(wide)
    for r in prange(n_ranges):
        rows = np.empty((base + ops.shape[0], UNIT))
        done = 0
        while done < range_len[r]:
            n = min(UNIT, range_len[r] - done)
            _eval_block(narrow, bits, wide, ops, params, range_start[r] + done, n, rows)
            for w in range(wanted.shape[0]):
                src = rows[base + wanted[w]]
                dst = out[w, offsets[r] + done:offsets[r] + done + n]
                for i in range(n):
                    dst[i] = src[i]
            done += n
    return out


@njit(**_JIT)
def gather_candidates(cand_row, counts, cap):
    """The candidates of one bracket, task regions concatenated (each capped at cap)."""
    total = 0
    for t in range(counts.shape[0]):
        total += min(counts[t], cap)
    out = np.empty(total)
    pos = 0
    for t in range(counts.shape[0]):
        k = min(counts[t], cap)
        out[pos:pos + k] = cand_row[t * cap:t * cap + k]
        pos += k
    return out
