"""Embedders on their own: the OpenAI-compatible client against a real local HTTP server,
the local model for real, and the settings that choose between them."""

from __future__ import annotations

import math
import socket

import pytest

from chad_memory.embedders import embedder_from_settings, fit_dimension
from chad_memory.embedders.local import LocalEmbedder
from chad_memory.embedders.openai import OpenAIEmbedder
from chad_memory.errors import EmbedderFailedError, EmbedderUnavailableError, InvalidInputError
from chad_memory.settings import Settings
from tests.memory.fake_openai import FakeOpenAI, word_vector


def client(fake: FakeOpenAI, **kw: object) -> OpenAIEmbedder:
    options: dict[str, object] = {"model": "fake-embed", "api_key": "sk-1", "retries": 0}
    options.update(kw)
    base = str(options.pop("base_url", fake.url))
    return OpenAIEmbedder(base_url=base, **options)  # type: ignore[arg-type]


async def test_texts_go_in_batches_and_come_back_in_order(fake_openai: FakeOpenAI) -> None:
    texts = [f"text number {i}" for i in range(7)]
    embedder = client(fake_openai, batch_size=3, dimensions=32)
    try:
        vectors = await embedder.embed_documents(texts)
    finally:
        await embedder.aclose()
    assert vectors == [word_vector(t, 32) for t in texts]
    assert [len(r["body"]["input"]) for r in fake_openai.requests] == [3, 3, 1]
    first = fake_openai.requests[0]
    assert first["path"] == "/v1/embeddings"
    assert first["headers"]["Authorization"] == "Bearer sk-1"
    assert first["body"]["model"] == "fake-embed"
    assert first["body"]["dimensions"] == 32


async def test_azure_style_base_url_keeps_its_query_and_sends_api_key(
    fake_openai: FakeOpenAI,
) -> None:
    base = fake_openai.url.removesuffix("/v1") + "/openai/deployments/emb?api-version=2024-02-01"
    embedder = client(fake_openai, base_url=base)
    try:
        assert await embedder.embed_query("hello") == word_vector("hello", fake_openai.dim)
    finally:
        await embedder.aclose()
    sent = fake_openai.requests[0]
    assert sent["path"] == "/openai/deployments/emb/embeddings?api-version=2024-02-01"
    assert sent["headers"]["api-key"] == "sk-1"
    assert "Authorization" not in sent["headers"]


async def test_busy_is_retried_then_unavailable_with_its_retry_after(
    fake_openai: FakeOpenAI,
) -> None:
    fake_openai.mode = "busy"
    embedder = client(fake_openai, retries=2)
    try:
        with pytest.raises(EmbedderUnavailableError) as caught:
            await embedder.embed_query("x")
    finally:
        await embedder.aclose()
    assert len(fake_openai.requests) == 3
    assert caught.value.retry_after_s == 7


@pytest.mark.parametrize(
    ("mode", "words"),
    [("error", "model 'nope' does not exist"), ("garbage", "not an embeddings list")],
)
async def test_an_error_answer_names_the_embedders_error(
    fake_openai: FakeOpenAI, mode: str, words: str
) -> None:
    fake_openai.mode = mode
    embedder = client(fake_openai, retries=3)
    try:
        with pytest.raises(EmbedderFailedError, match=words):
            await embedder.embed_query("x")
    finally:
        await embedder.aclose()
    assert len(fake_openai.requests) == 1  # an answer that says no is not asked again


async def test_slow_and_unreachable_are_unavailable(fake_openai: FakeOpenAI) -> None:
    fake_openai.mode = "slow"
    fake_openai.delay_s = 1.0
    slow = client(fake_openai, timeout_s=0.2)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nothing listens there
    refused = client(fake_openai, base_url=f"http://127.0.0.1:{port}/v1")
    try:
        with pytest.raises(EmbedderUnavailableError, match="timed out"):
            await slow.embed_query("x")
        with pytest.raises(EmbedderUnavailableError, match="unreachable"):
            await refused.embed_query("x")
    finally:
        await slow.aclose()
        await refused.aclose()


async def test_the_local_model_embeds_for_real_offline() -> None:
    embedder = LocalEmbedder(batch_size=2)
    passages = [
        "Adults need about fifty grams of protein a day.",
        "The stock market fell sharply on Tuesday.",
        "Paris is the capital of France.",
    ]
    stored = await embedder.embed_documents(passages)
    query = await embedder.embed_query("how much protein should I eat daily")
    assert [len(v) for v in stored] == [384, 384, 384]
    assert math.isclose(math.hypot(*stored[0]), 1.0, rel_tol=1e-3)
    scores = [sum(a * b for a, b in zip(query, v, strict=True)) for v in stored]
    assert scores.index(max(scores)) == 0, scores
    assert await embedder.embed_documents(passages[:1]) == stored[:1]  # deterministic


def test_settings_choose_the_embedder() -> None:
    assert embedder_from_settings(Settings(embedder="none")) is None
    assert isinstance(embedder_from_settings(Settings(embedder="local")), LocalEmbedder)
    with pytest.raises(InvalidInputError, match="EMBEDDER_MODEL"):
        embedder_from_settings(Settings(embedder="openai"))
    with pytest.raises(InvalidInputError, match="384"):
        embedder_from_settings(Settings(embedder="local", embedder_dimensions=256))
    with pytest.raises(ValueError, match="EMBEDDER_BASE_URL"):
        embedder_from_settings(
            Settings(embedder="openai", embedder_model="m", embedder_base_url="ftp://x")
        )


def test_shorter_vectors_are_padded_without_changing_cosine() -> None:
    a, b = [0.6, 0.8, 0.0], [1.0, 0.0, 1.0]
    pa, pb = fit_dimension(a, 8, "e"), fit_dimension(b, 8, "e")
    assert len(pa) == 8
    assert pa[3:] == [0.0] * 5

    def cos(x: list[float], y: list[float]) -> float:
        return sum(p * q for p, q in zip(x, y, strict=True)) / (math.hypot(*x) * math.hypot(*y))

    assert math.isclose(cos(a, b), cos(pa, pb))
    with pytest.raises(EmbedderFailedError, match="EMBEDDER_DIMENSIONS"):
        fit_dimension([1.0] * 9, 8, "e")
