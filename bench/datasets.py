"""Synthetic vectors that are realistically hard for an approximate index.

Uniform random vectors (every pair nearly orthogonal) or well-separated clusters make any
index look perfect. Real embeddings live near a low-dimensional manifold with overlapping
topics, so we draw a Gaussian mixture in a small latent space, project it up with a random
linear map, add isotropic noise and normalise. `hardness()` reports what that gives: the
10th neighbour's cosine well below 1, random pairs near 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

Matrix = NDArray[np.float32]


@dataclass(frozen=True)
class VectorSet:
    base: Matrix
    queries: Matrix


def clustered_vectors(
    n: int,
    dim: int,
    *,
    queries: int = 200,
    seed: int = 42,
    latent_dim: int = 128,
    clusters: int | None = None,
    spread: float = 2.0,
    noise: float = 0.35,
) -> VectorSet:
    """`n` base vectors and `queries` held-out queries from the same distribution."""
    rng = np.random.default_rng(seed)
    k = clusters or max(8, int(np.sqrt(n) / 2))
    total = n + queries
    centers = rng.standard_normal((k, latent_dim)).astype(np.float32) * 1.2
    assign = rng.integers(0, k, size=total)
    latent = centers[assign] + spread * rng.standard_normal((total, latent_dim)).astype(np.float32)
    projection = rng.standard_normal((latent_dim, dim)).astype(np.float32) / np.sqrt(latent_dim)
    x = latent @ projection + noise * rng.standard_normal((total, dim)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    x = x.astype(np.float32)
    return VectorSet(base=x[:n], queries=x[n:])


def exact_top_k(
    base: Matrix, queries: Matrix, k: int, mask: NDArray[np.bool_] | None = None
) -> NDArray[np.int64]:
    """Indices of the k most cosine-similar base rows per query (rows must be unit length)."""
    out = np.empty((len(queries), k), dtype=np.int64)
    candidates = np.arange(len(base)) if mask is None else np.flatnonzero(mask)
    sub = base[candidates]
    for start in range(0, len(queries), 64):
        sims = queries[start : start + 64] @ sub.T
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        order = np.take_along_axis(sims, top, axis=1).argsort(axis=1)[:, ::-1]
        out[start : start + 64] = candidates[np.take_along_axis(top, order, axis=1)]
    return out


def hardness(base: Matrix, queries: Matrix, k: int = 10) -> dict[str, float]:
    """Median cosine of each query's 1st and k-th neighbour, and of random pairs."""
    rng = np.random.default_rng(0)
    sims = queries @ base.T
    part = -np.sort(-sims, axis=1)
    a = rng.integers(0, len(base), 2000)
    b = rng.integers(0, len(base), 2000)
    random_pairs = np.einsum("ij,ij->i", base[a], base[b])
    return {
        "nn1_cos": float(np.median(part[:, 0])),
        f"nn{k}_cos": float(np.median(part[:, k - 1])),
        "random_pair_cos": float(np.median(random_pairs)),
        "random_pair_abs_p95": float(np.quantile(np.abs(random_pairs), 0.95)),
    }


def recall_at_k(found: list[list[int]], truth: NDArray[np.int64]) -> float:
    """Mean share of the true top-k that each query's answer contains."""
    k = int(truth.shape[1])
    hits = 0
    for f, t in zip(found, truth, strict=True):
        hits += len(set(f) & {int(x) for x in t})
    return hits / (k * len(found))
