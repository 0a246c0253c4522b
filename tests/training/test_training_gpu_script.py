"""benchmarks/gpu_dpo.py must run anywhere: its --tiny mode on CPU checks the script the GPU machine runs."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_dpo_script_tiny_on_cpu(tmp_path):
    out = tmp_path / "gpu_dpo.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_dpo.py"), "--tiny", "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    report = json.loads(out.read_text())
    assert [r["mode"] for r in report["runs"]] == ["full", "lora"]
    full, lora = report["runs"]
    assert all(math.isfinite(r["tokens_per_s"]) and r["tokens_per_s"] > 0 for r in report["runs"])
    assert lora["trainable_params"] < full["trainable_params"]  # the adapter, not the model, is trained
