"""Mean squared displacements over all time origins by FFT, O(T log T), memory-bounded.

For a block of L frames and one coordinate series x(t),

    MSD(m) = 1/(L-m) * sum_{t=0}^{L-1-m} |x(t+m) - x(t)|^2
           = [ sum_{t<L-m} |x(t)|^2 + sum_{t>=m} |x(t)|^2 - 2 sum_t x(t).x(t+m) ] / (L-m),

and the last sum (the autocorrelation) is an inverse FFT of the power spectrum of the zero-padded
series. Summed over atoms the power spectra add, so a group of atoms needs forward FFTs but one
inverse FFT only. Atoms are processed in groups so the complex spectra stay below ``budget_bytes``;
several blocks of one trajectory go through the same FFT call.
"""

from __future__ import annotations

import numpy as np

DEFAULT_BUDGET = 256 << 20


def _fast_len(n: int) -> int:
    from scipy.fft import next_fast_len

    return next_fast_len(n, real=True)


def msd_sum_blocks(x: np.ndarray, n_blocks: int = 1, max_lag: int | None = None,
                   budget_bytes: int = DEFAULT_BUDGET) -> np.ndarray:
    """Sum over particles of the all-origin MSD, per contiguous block.

    x: (T, n, 3) or (T, 3) unwrapped coordinates. The first ``n_blocks * (T // n_blocks)`` frames
    are cut into ``n_blocks`` blocks of L = T // n_blocks frames. Returns S of shape
    (n_blocks, max_lag) with S[b, m] = sum_i MSD_i(m) of block b, m = 0 .. max_lag-1 (default L).
    """
    from scipy.fft import irfft, rfft

    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2:
        x = x[:, None, :]
    T, n, d = x.shape
    L = T // n_blocks
    if L < 2:
        raise ValueError(f"{T} frames cannot make {n_blocks} blocks of >= 2 frames")
    max_lag = L if max_lag is None else min(int(max_lag), L)
    nfft = _fast_len(2 * L)
    nfreq = nfft // 2 + 1
    per_atom = n_blocks * d * nfreq * 16 * 2  # spectrum + workspace
    group = max(1, int(budget_bytes // per_atom))
    power = np.zeros((n_blocks, nfreq))
    dsq = np.zeros((n_blocks, L))
    for a0 in range(0, n, group):
        xb = x[:n_blocks * L, a0:a0 + group].reshape(n_blocks, L, -1, d)
        xb = xb - xb.mean(axis=1, keepdims=True)          # MSD is shift invariant; helps precision
        dsq += np.einsum("blad,blad->bl", xb, xb)
        y = np.ascontiguousarray(xb.transpose(0, 2, 3, 1))  # (blocks, atoms, d, L): FFT on last axis
        spec = rfft(y, n=nfft, axis=-1, workers=1)
        power += (spec.real ** 2 + spec.imag ** 2).sum(axis=(1, 2))
        del spec, y, xb
    acf = irfft(power, n=nfft, axis=-1, workers=1)[:, :max_lag]
    cs = np.zeros((n_blocks, L + 1))
    np.cumsum(dsq, axis=1, out=cs[:, 1:])
    m = np.arange(max_lag)
    s1 = cs[:, L - m] + (cs[:, L:L + 1] - cs[:, m])
    out = (s1 - 2.0 * acf) / (L - m)
    out[:, 0] = 0.0
    np.maximum(out, 0.0, out=out)  # round-off can leave -1e-12 at tiny lags
    return out


def msd_direct(x: np.ndarray, lags) -> np.ndarray:
    """Reference O(T) per lag: sum over particles of the all-origin MSD at the given lags."""
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2:
        x = x[:, None, :]
    out = []
    for m in np.atleast_1d(lags):
        m = int(m)
        if m == 0:
            out.append(0.0)
            continue
        d = x[m:] - x[:-m]
        out.append(float(np.einsum("tad,tad->", d, d) / d.shape[0]))
    return np.array(out)


def linear_fit(lags: np.ndarray, y: np.ndarray):
    """Ordinary least-squares slope and intercept of y(lags) along the last axis (vectorized)."""
    t = np.asarray(lags, dtype=np.float64)
    tc = t - t.mean()
    yc = y - y.mean(axis=-1, keepdims=True)
    slope = (yc * tc).sum(axis=-1) / (tc * tc).sum()
    intercept = y.mean(axis=-1) - slope * t.mean()
    return slope, intercept


def loglog_slope(lags: np.ndarray, y: np.ndarray, n_points: int = 32) -> float:
    """d ln y / d ln t over the given lag range, fitted on ~log-spaced points (NaN if y <= 0)."""
    lags = np.asarray(lags, dtype=np.float64)
    idx = np.unique(np.geomspace(1, len(lags), min(n_points, len(lags))).astype(int) - 1)
    t, v = lags[idx], y[idx]
    if len(t) < 2 or np.any(v <= 0) or np.any(t <= 0):
        return float("nan")
    s, _ = linear_fit(np.log(t), np.log(v))
    return float(s)
