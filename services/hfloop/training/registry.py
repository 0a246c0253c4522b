"""Promoted models: a version string, a folder agents can route to, and one registry file.

Layout under ``<data_dir>/models/``::

    registry.json          {"latest": {"DPO": version, ...}, "versions": [{version, kind, run_id, path, ...}]}
    <version>/             the promoted model (Hugging Face folder: weights + tokenizer)

The registry file is replaced atomically, so a reader never sees half an update.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from hfloop.config import Settings


def models_dir(settings: Settings) -> Path:
    return settings.data_dir / "models"


def registry_path(settings: Settings) -> Path:
    return models_dir(settings) / "registry.json"


def load_registry(settings: Settings) -> dict[str, Any]:
    path = registry_path(settings)
    if not path.exists():
        return {"latest": {}, "versions": []}
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def _write_atomic(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".registry-")
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
    os.replace(tmp, path)


def promote(
    settings: Settings, kind: str, run_id: str, artifact: Path, metrics: dict[str, float]
) -> tuple[str, str]:
    """Copy ``artifact`` to ``models/<version>`` and make it the latest of ``kind``; (version, path)."""
    version = f"{kind.lower()}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}-{run_id[-6:]}"
    target = models_dir(settings) / version
    shutil.copytree(artifact, target)
    reg = load_registry(settings)
    reg["versions"].append(
        {
            "version": version,
            "kind": kind,
            "run_id": run_id,
            "path": str(target.resolve()),
            "promoted_at": int(time.time() * 1000),
            "metrics": {k: v for k, v in metrics.items() if isinstance(v, int | float)},
        }  # fmt: skip
    )
    reg["latest"][kind] = version
    _write_atomic(registry_path(settings), reg)
    return version, str(target.resolve())


def latest(settings: Settings, kind: str = "DPO") -> dict[str, Any] | None:
    """The registry entry of the latest promoted model of ``kind`` (None when there is none)."""
    reg = load_registry(settings)
    version = reg["latest"].get(kind)
    return next((v for v in reg["versions"] if v["version"] == version), None)
