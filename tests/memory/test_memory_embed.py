"""Embedders: the real MiniLM separates paraphrases from unrelated text; the ONNX int8 export
agrees with PyTorch; the hash embedder is deterministic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hfloop.memory.embed import HashEmbedder, OnnxMiniLM, make_embedder

PAIRS = [
    ("How do I reset my password?", "I forgot my password, how can I change it?"),
    ("Cancel my subscription", "I want to stop my monthly plan"),
    ("Where is my order?", "My package hasn't arrived yet, can you track it?"),
]
UNRELATED = [
    "What's the weather in Paris tomorrow?",
    "Recommend a good pasta recipe",
    "Who won the 1998 world cup?",
]


def test_minilm_puts_paraphrases_close_and_unrelated_far(minilm) -> None:
    a = minilm.embed([p for p, _ in PAIRS])
    b = minilm.embed([q for _, q in PAIRS])
    u = minilm.embed(UNRELATED)
    assert a.shape == (3, 384) and a.dtype == np.float32
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    para = (a * b).sum(1)
    unrelated = (a @ u.T).max(1)
    assert para[0] > 0.8  # the acceptance example
    assert (para - unrelated).min() > 0.15, (para, unrelated)  # each paraphrase beats every unrelated text


@pytest.fixture(scope="module")
def onnx_int8(tmp_path_factory: pytest.TempPathFactory) -> OnnxMiniLM:
    from hfloop.config import Settings

    cache = Settings().cache_dir / "onnx"  # the export is cached across runs, like in production
    return OnnxMiniLM(Path(cache))


def test_onnx_int8_agrees_with_pytorch(minilm, onnx_int8: OnnxMiniLM) -> None:
    texts = [t for pair in PAIRS for t in pair] + UNRELATED + ["a", "x " * 400]  # incl. one past 256 tokens
    ref = minilm.embed(texts)
    got = onnx_int8.embed(texts)
    cos = (ref * got).sum(1)
    assert cos.min() > 0.97, cos
    # One at a time (no padding) agrees too: the traced graph has no shape-dependent shortcut
    # baked in. Not bit-equal: dynamic int8 quantization scales activations per batch.
    single = np.vstack([onnx_int8.embed([t]) for t in texts])
    assert ((single * ref).sum(1)).min() > 0.97


def test_onnx_fp32_export_is_exact(minilm) -> None:
    from hfloop.config import Settings

    fp32 = OnnxMiniLM(Settings().cache_dir / "onnx", quantized=False)
    texts = [t for pair in PAIRS for t in pair] + ["a", "x " * 400]
    ref = minilm.embed(texts)
    assert np.allclose(fp32.embed(texts), ref, atol=1e-4)
    assert np.allclose(np.vstack([fp32.embed([t]) for t in texts]), ref, atol=1e-4)


def test_hash_embedder_is_deterministic_and_normalised() -> None:
    h = HashEmbedder()
    x = h.embed(["reset my password", "reset my password", ""])
    assert np.array_equal(x[0], x[1])
    assert np.allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-5)
    assert h.embed([]).shape == (0, 384)


def test_factory_rejects_unknown_names(settings_factory) -> None:
    assert make_embedder(settings_factory(embedder="hash")).name == "hash"
    with pytest.raises(ValueError, match="unknown embedder"):
        make_embedder(settings_factory(embedder="nope"))
