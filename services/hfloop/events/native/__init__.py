"""Native Avro binary encoder: byte-identical to fastavro's schemaless_writer, ~15x faster.

Also a skip-validator for the analytics sink (``validator_for``): it walks an Avro body without
decoding it and accepts exactly what fastavro's schemaless_reader accepts (plus value ranges);
and ``InteractionSender``, the SDK's ``log_interaction`` in C (see hfloop.sdk.client and
docs/backbone.md).

``encoder_for(parsed_schema)`` returns an object with ``encode(prefix, record) -> bytes``, or
``None`` when the schema cannot be compiled (the serde then uses fastavro for that record).
When the extension is missing or was built from an older source, :data:`ACTIVE` is False,
one WARNING names the reason and how to build it, and every record goes through fastavro:
slower, never different.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path
from typing import Any, Protocol

from hfloop.events.native.program import NotCompilable, compile_schema

log = logging.getLogger(__name__)


class NativeEncoder(Protocol):
    def encode(self, prefix: bytes, datum: Any, /) -> bytes: ...


class NativeValidator(Protocol):
    def end(self, data: bytes, start: int = 0, /) -> int:
        """Where the body starting at ``start`` ends; -1 refused, -2 a value out of its range."""
        ...

    def rejects(self, values: list[Any], start: int, /) -> list[int]:
        """Indexes of the values whose bytes from ``start`` are not exactly one valid record."""
        ...


def _load() -> tuple[Any, str]:
    try:
        from hfloop.events.native import _avroenc  # type: ignore[attr-defined]
    except ImportError as exc:
        return None, f"the extension is not built ({exc})"
    source = Path(__file__).with_name("_avroenc.c")
    if source.is_file():  # a checkout: the module must come from this very source
        current = hashlib.sha256(source.read_bytes()).hexdigest()[:16]
        if current != _avroenc.SOURCE_HASH:
            return None, f"the extension was built from another version of {source.name}"
    return _avroenc, ""


_module, WHY_INACTIVE = _load()
ACTIVE = _module is not None
ENCODER = "native" if ACTIVE else "fastavro"
if not ACTIVE:
    log.warning(
        "hfloop: native Avro encoder unavailable, %s; encoding with fastavro (~15x slower). "
        "Build it with `python -m hfloop.events.native.build` (needs gcc and the Python headers).",
        WHY_INACTIVE,
    )

Unsupported: type[Exception] = _module.Unsupported if ACTIVE else ValueError
# FeedbackClient.log_interaction in C (None when inactive): binds the call's arguments, writes the
# Interaction with an Encoder's nodes and produces; anything unusual goes to the Python method.
InteractionSender: Any = _module.InteractionSender if ACTIVE else None


def encoder_for(parsed_schema: Any) -> NativeEncoder | None:
    """A native encoder for ``parsed_schema``; None when inactive or the schema is not compilable."""
    if _module is None:
        return None
    try:
        program = compile_schema(parsed_schema)
    except NotCompilable as exc:
        log.debug("native encoder: %s; fastavro encodes this record", exc)
        return None
    encoder: NativeEncoder = _module.Encoder(program)
    return encoder


def validator_for(
    parsed_schema: Any, ranges: dict[str, tuple[int, int]] | None = None
) -> NativeValidator | None:
    """A skip-validator for bodies written with ``parsed_schema``; ``ranges`` bounds the values of
    int/long nodes by logical type. None when inactive or the schema is not compilable."""
    if _module is None:
        return None
    try:
        program = compile_schema(parsed_schema, ranges)
    except NotCompilable as exc:
        log.debug("native validator: %s", exc)
        return None
    validator: NativeValidator = _module.Validator(program)
    return validator


__all__ = ["ACTIVE", "ENCODER", "WHY_INACTIVE", "InteractionSender", "NativeEncoder", "NativeValidator", "Unsupported", "encoder_for",
           "validator_for"]  # fmt: skip
