"""Event contract shared by every wing: schemas, serde, topic names, Kafka helpers."""

from hfloop.events.schemas import SchemaSet, load_schemas
from hfloop.events.serde import DecodeError, EncodeError, Serde, default_serde
from hfloop.events.topics import RECORD_TOPIC, TOPICS, key_of

__all__ = [
    "RECORD_TOPIC",
    "TOPICS",
    "DecodeError",
    "EncodeError",
    "SchemaSet",
    "Serde",
    "default_serde",
    "key_of",
    "load_schemas",
]
