"""Hatch build hook: compile the native Avro encoder (services/hfloop/events/native) at install.

Editable installs (`make install`) build it in place, next to its source; wheels (the Docker
image) carry a freshly built copy. Without a C compiler the install fails with the reason:
the SDK's documented speed depends on this module (see docs/backbone.md).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

NATIVE = Path(__file__).resolve().parent / "services" / "hfloop" / "events" / "native"


def _builder() -> Any:
    # By path: the build environment has hatchling, not hfloop's dependencies.
    spec = importlib.util.spec_from_file_location("hfloop_native_build", NATIVE / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class NativeEncoderHook(BuildHookInterface):  # type: ignore[type-arg]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        built = _builder().compile_extension()
        if version != "editable":
            build_data["force_include"][str(built)] = f"hfloop/events/native/{built.name}"
        # A compiled module: the wheel is tagged for this interpreter and platform.
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
