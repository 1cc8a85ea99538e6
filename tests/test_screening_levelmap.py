"""Known-answer tests of the exact level map / MPE / percolation (ionflow.screening.levelmap).

The reference is an independent brute force: Dijkstra with max instead of + (heapq) on the
torus for the level map, and on the lifted (unwrapped) graph in a box of (2R+1)^3 cells for the
lattice-translation MPE and the percolation energies.
"""

from __future__ import annotations

import heapq

import numpy as np
import pytest

from ionflow.screening.levelmap import minimax_landscape

INF_NAN = {"nan": -7.0, "posinf": 99.0}


def bf_level(E, s):
    sh = E.shape
    best = {s: E[s]}
    pq = [(E[s], s)]
    done = set()
    while pq:
        lv, x = heapq.heappop(pq)
        if x in done:
            continue
        done.add(x)
        for a in range(3):
            for d in (-1, 1):
                y = list(x)
                y[a] = (y[a] + d) % sh[a]
                y = tuple(y)
                if not np.isfinite(E[y]):
                    continue
                nl = max(lv, E[y])
                if nl < best.get(y, np.inf):
                    best[y] = nl
                    heapq.heappush(pq, (nl, y))
    out = np.full(sh, np.inf)
    out[~np.isfinite(E)] = np.nan
    for k, v in best.items():
        out[k] = v - E[s]
    return out


def bf_lift(E, s, R):
    """Minimax from s in cell 0 to every (node, cell) with |cell| <= R on the unwrapped graph."""
    sh = E.shape
    best = {(s, (0, 0, 0)): E[s]}
    pq = [(E[s], s, (0, 0, 0))]
    done = set()
    while pq:
        lv, x, c = heapq.heappop(pq)
        if (x, c) in done:
            continue
        done.add((x, c))
        for a in range(3):
            for d in (-1, 1):
                y, cc = list(x), list(c)
                y[a] += d
                if y[a] < 0:
                    y[a] += sh[a]
                    cc[a] -= 1
                elif y[a] >= sh[a]:
                    y[a] -= sh[a]
                    cc[a] += 1
                y, cc = tuple(y), tuple(cc)
                if max(abs(k) for k in cc) > R or not np.isfinite(E[y]):
                    continue
                nl = max(lv, E[y])
                if nl < best.get((y, cc), np.inf):
                    best[(y, cc)] = nl
                    heapq.heappush(pq, (nl, y, cc))
    return best


def _same(a, b):
    return (np.isinf(a) and np.isinf(b)) or np.isclose(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_random_grids_match_brute_force(seed):
    """Random energies, random NaN holes, shapes 1..4 (self-loops, doubled edges), random start."""
    rng = np.random.default_rng(seed)
    for _ in range(8):
        sh = tuple(int(x) for x in rng.integers(1, 5, 3))
        E = rng.normal(size=sh)
        E[rng.random(sh) < rng.uniform(0, 0.45)] = np.nan
        finite = np.argwhere(np.isfinite(E))
        if not len(finite):
            continue
        s = tuple(int(k) for k in finite[rng.integers(len(finite))])
        r = minimax_landscape(E, s)
        assert r.start == s
        assert r.e_start == E[s]
        np.testing.assert_array_equal(np.nan_to_num(bf_level(E, s), **INF_NAN),
                                      np.nan_to_num(r.level, **INF_NAN))
        best = bf_lift(E, s, 2)
        for a in range(3):
            target = tuple(int(k == a) for k in range(3))
            mpe = best.get((s, target), np.inf) - E[s]
            assert _same(mpe, r.mpe_axis[a]), (sh, a, mpe, r.mpe_axis[a])
            perc = min([v for (x, c), v in best.items() if x == s and c[a] != 0], default=np.inf) - E[s]
            assert _same(perc, r.percolation_axis[a]), (sh, a, perc, r.percolation_axis[a])


def _grid(shape):
    return np.meshgrid(*(np.arange(n) / n for n in shape), indexing="ij")


def test_cosine_landscape_saddles_exact():
    """E = -sum A_a cos(2 pi x_a): the barrier along a is the saddle 2 A_a, exactly."""
    A = (0.15, 0.4, 0.9)
    shape = (12, 10, 8)
    x, y, z = _grid(shape)
    E = -(A[0] * np.cos(2 * np.pi * x) + A[1] * np.cos(2 * np.pi * y) + A[2] * np.cos(2 * np.pi * z))
    r = minimax_landscape(E)
    assert r.start == (0, 0, 0)
    np.testing.assert_allclose(r.mpe_axis, 2 * np.array(A), rtol=0, atol=1e-12)
    np.testing.assert_allclose(r.percolation_axis, 2 * np.array(A), rtol=0, atol=1e-12)
    assert r.mpe == pytest.approx(0.3, abs=1e-12)
    # separable monotone wells: every point is reached without going higher than itself
    np.testing.assert_allclose(r.level, E - E[0, 0, 0], rtol=0, atol=1e-12)


def test_cosine_with_two_sites_and_a_saddle():
    """Two minima per cell along x (deep at 0, shallow at 1/2), barrier between them known."""
    shape = (16, 6, 6)
    x, y, z = _grid(shape)
    # along x: -cos(2 pi x) - 0.8 cos(4 pi x): minima at 0 (-1.8) and 1/2 (+0.2), saddles between
    ex = -np.cos(2 * np.pi * x) - 0.8 * np.cos(4 * np.pi * x)
    E = ex + 2.0 * (2 - np.cos(2 * np.pi * y) - np.cos(2 * np.pi * z))
    r = minimax_landscape(E)
    line = ex[:, 0, 0]
    assert r.mpe_axis[0] == pytest.approx(line.max() - line.min(), abs=1e-12)
    assert r.mpe_axis[1] == pytest.approx(4.0, abs=1e-12)
    # the shallow site at x = 1/2 is reached over the saddle between the sites
    assert r.level[8, 0, 0] == pytest.approx(line[:9].max() - line[0], abs=1e-12)


def test_channel_along_one_axis_only():
    """Finite energies only in a tube along b: MPE finite along b, inf along a and c."""
    shape = (6, 8, 5)
    E = np.full(shape, np.nan)
    y = np.arange(shape[1]) / shape[1]
    E[2, :, 3] = 0.3 * (1 - np.cos(2 * np.pi * y))
    E[3, :, 3] = 0.3 * (1 - np.cos(2 * np.pi * y)) + 0.05
    r = minimax_landscape(E)
    assert np.isinf(r.mpe_axis[0]) and np.isinf(r.mpe_axis[2])
    assert r.mpe_axis[1] == pytest.approx(0.6, abs=1e-12)
    assert r.mpe == pytest.approx(0.6, abs=1e-12)
    assert np.isinf(r.percolation_axis[[0, 2]]).all()


def test_diagonal_channel_percolates_but_never_reaches_own_image_along_a():
    """A staircase along a + b: the ion diffuses along a and b (percolation finite) but never
    reaches s + a or s + b alone (lattice-translation MPE infinite); it does reach s + a + b."""
    n = 6
    E = np.full((n, n, 3), np.nan)
    for k in range(n):
        E[k, k, 1] = 0.0
        E[(k + 1) % n, k, 1] = 0.2  # the step (k,k) -> (k+1,k) -> (k+1,k+1)
    r = minimax_landscape(E, (0, 0, 1))
    assert np.isinf(r.mpe_axis).all()
    assert r.percolation_axis[0] == pytest.approx(0.2) and r.percolation_axis[1] == pytest.approx(0.2)
    assert np.isinf(r.percolation_axis[2])
    assert [1, 1, 0] in r.windings.tolist()


def test_excluded_wall_blocks_percolation_and_unreachable_is_inf():
    shape = (8, 4, 4)
    E = np.zeros(shape)
    E[4] = np.nan  # an excluded plane perpendicular to a
    E[6, 1, 1] = -1.0  # lower point, but the start is given explicitly
    r = minimax_landscape(E, (1, 1, 1))
    assert np.isinf(r.mpe_axis[0])
    assert r.mpe_axis[1] == 0.0 and r.mpe_axis[2] == 0.0
    # everything on the other side is reachable around the torus (x = 5..7 wraps to 0)
    assert np.isnan(r.level[4]).all()
    assert r.level[6, 1, 1] == 0.0  # below the start, reached at the start's level
    E2 = E.copy()
    E2[0] = np.nan  # second wall: x = 5..7 now cut off from x = 1..3
    r2 = minimax_landscape(E2, (1, 1, 1))
    assert np.isinf(r2.level[5:]).all() and np.isfinite(r2.level[1:4]).all()


def test_bad_inputs():
    with pytest.raises(ValueError, match="excluded"):
        minimax_landscape(np.array([[[np.nan, 0.0]]]), (0, 0, 0))
    with pytest.raises(ValueError, match="every grid point"):
        minimax_landscape(np.full((2, 2, 2), np.nan))
    with pytest.raises(ValueError, match="outside"):
        minimax_landscape(np.zeros((2, 2, 2)), (0, 0, 5))
