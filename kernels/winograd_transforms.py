"""Winograd minimal-filtering transforms F(m, r), derived by Cook–Toom interpolation.

Why derive instead of copying the published matrices: the tables in papers differ by row scalings
and signs, a single mistyped entry gives a convolution that is wrong by a few percent (easy to miss),
and F(4, 3) has 90 entries. Deriving them from the interpolation points in exact rational arithmetic
(`fractions.Fraction`) makes every entry follow from one short argument, checked by tests against
direct correlation.

Derivation. F(m, r) computes m outputs of a 1-D correlation with an r-tap filter,
y_i = sum_k g_k d_{i+k} (i < m), from alpha = m + r - 1 inputs with alpha multiplications.

1. Linear convolution as polynomial multiplication: with h(x) = sum_i h_i x^i (degree m - 1) and
   g(x) = sum_k g_k x^k (degree r - 1), s(x) = h(x) g(x) has the alpha coefficients
   s_l = sum_i h_i g_{l-i}, i.e. s = T_g h with the alpha x m Toeplitz matrix T_g[l, i] = g_{l-i}.
2. Cook–Toom: choose alpha - 1 distinct finite points p_j and the point at infinity. The product is
   evaluated pointwise, s(p_j) = h(p_j) g(p_j), and "s at infinity" is the leading coefficient,
   s_{alpha-1} = h_{m-1} g_{r-1}. Lagrange interpolation recovers s from these alpha values:
       s(x) = s_inf M(x) + sum_j s(p_j) N_j(x) / c_j,
   where M(x) = prod_k (x - p_k), N_j(x) = prod_{k != j} (x - p_k) and c_j = N_j(p_j). (s - s_inf M
   has degree alpha - 2 and the same values at the alpha - 1 finite points, so Lagrange is exact.)
   In matrices: s = L [(G g) ⊙ (E h)], with
       G (alpha x r):   row j = (1, p_j, p_j^2, ...) / c_j,   row inf = (0, ..., 0, 1);
       E (alpha x m):   row j = (1, p_j, ..., p_j^{m-1}),    row inf = (0, ..., 0, 1);
       L (alpha x alpha): column j = coefficients of N_j,  column inf = coefficients of M.
   The 1/c_j could sit in L or in G; putting it in G (the filter side, transformed once per
   layer) leaves L with the integer coefficients of monic polynomials when the points are
   integers, so the per-tile transforms are additions and small integer multiples. This is where
   the familiar 1/2 of F(2, 3)'s G comes from.
3. Transposition: correlation is the transpose of convolution, y = T_g^T d, and
   T_g = L diag(G g) E gives T_g^T = E^T diag(G g) L^T, so
       y = A^T [(G g) ⊙ (B^T d)]   with   A^T = E^T (m x alpha),  B^T = L^T (alpha x alpha).
4. 2-D: a 2-D correlation is the 1-D one applied along rows and then columns (the index sets are a
   tensor product), so nesting F(m, r) with itself gives F(m x m, r x r):
       Y = A^T [(G g G^T) ⊙ (B^T d B)] A        (g: r x r filter, d: alpha x alpha input tile).

Points. F(2, 3) uses (0, 1, -1, inf); F(4, 3) uses (0, 1, -1, 2, -2, inf): the smallest integers,
which keep the entries of B^T and A^T small (|entries| <= 5 and 8) and so limit the growth of
rounding errors, which is worse the larger the points are (the matrices are Vandermonde-like).
"""

from __future__ import annotations

from fractions import Fraction

import torch
from torch import Tensor

Matrix = tuple[tuple[Fraction, ...], ...]

# Finite points in order of preference; F(m, r) takes the first m + r - 2 of them.
_POINT_ORDER = (0, 1, -1, 2, -2, Fraction(1, 2), Fraction(-1, 2), 3, -3)


def default_points(m: int, r: int = 3) -> tuple[Fraction, ...]:
    """The finite interpolation points F(m, r) uses (the point at infinity is implicit)."""
    n = m + r - 2
    if n > len(_POINT_ORDER):
        raise ValueError(f"F({m}, {r}) needs {n} points; only {len(_POINT_ORDER)} are listed")
    return tuple(Fraction(p) for p in _POINT_ORDER[:n])


def _poly_from_roots(roots: list[Fraction], length: int) -> list[Fraction]:
    """Coefficients (lowest degree first, zero-padded to `length`) of prod (x - root)."""
    coeffs = [Fraction(1)]
    for root in roots:
        shifted = [Fraction(0), *coeffs]  # x * poly
        coeffs = [a - root * b for a, b in zip(shifted, [*coeffs, Fraction(0)])]
    return coeffs + [Fraction(0)] * (length - len(coeffs))


def winograd_fractions(
    m: int, r: int = 3, points: tuple[Fraction, ...] | None = None
) -> tuple[Matrix, Matrix, Matrix]:
    """Exact (A^T, G, B^T) of F(m, r): shapes (m, alpha), (alpha, r), (alpha, alpha).

    `points` are the alpha - 1 = m + r - 2 distinct finite interpolation points (the point at
    infinity is always added last); None uses `default_points(m, r)`.
    """
    if m < 1 or r < 1:
        raise ValueError(f"F(m, r) needs m, r >= 1, got m={m}, r={r}")
    alpha = m + r - 1
    pts = default_points(m, r) if points is None else tuple(Fraction(p) for p in points)
    if len(pts) != alpha - 1 or len(set(pts)) != len(pts):
        raise ValueError(f"F({m}, {r}) needs {alpha - 1} distinct finite points, got {pts}")

    g_rows, e_rows, l_cols = [], [], []
    for j, p in enumerate(pts):
        others = [q for i, q in enumerate(pts) if i != j]
        c_j = Fraction(1)
        for q in others:
            c_j *= p - q
        g_rows.append(tuple(p**k / c_j for k in range(r)))
        e_rows.append(tuple(p**i for i in range(m)))
        l_cols.append(_poly_from_roots(others, alpha))
    # The point at infinity: leading coefficients, interpolated by M(x) = prod (x - p).
    g_rows.append(tuple(Fraction(int(k == r - 1)) for k in range(r)))
    e_rows.append(tuple(Fraction(int(i == m - 1)) for i in range(m)))
    l_cols.append(_poly_from_roots(list(pts), alpha))

    a_t = tuple(tuple(e_rows[j][i] for j in range(alpha)) for i in range(m))  # E^T
    b_t = tuple(tuple(col) for col in l_cols)  # L^T: row j of B^T is column j of L
    return a_t, tuple(g_rows), b_t


def winograd_matrices(
    m: int, r: int = 3, points: tuple[Fraction, ...] | None = None
) -> tuple[Tensor, Tensor, Tensor]:
    """(A^T, G, B^T) of F(m, r) as float64 tensors; see `winograd_fractions`."""
    return tuple(  # type: ignore[return-value]
        torch.tensor([[float(v) for v in row] for row in mat], dtype=torch.float64)
        for mat in winograd_fractions(m, r, points)
    )
