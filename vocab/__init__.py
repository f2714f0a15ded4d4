"""The Atlas vocabulary: namespaces, concept schemes, JSON-LD context, SHACL shapes,
and THE mapping between plain records and RDF used by nodes and harvesters alike."""

from __future__ import annotations

from .errors import InvalidRecord, RemoteContextRefused, VocabError
from .fields import ENTITIES, Entity, Field, entity
from .mapping import CONTEXT_URL, entity_id, entity_uri, from_graph, normalize, to_graph, to_jsonld
from .namespaces import EA, NS_BASE, SCHEMA, VOCAB_VERSION
from .schemas import load_record

__all__ = [
    "CONTEXT_URL",
    "EA",
    "ENTITIES",
    "Entity",
    "Field",
    "InvalidRecord",
    "NS_BASE",
    "RemoteContextRefused",
    "SCHEMA",
    "VOCAB_VERSION",
    "VocabError",
    "entity",
    "entity_id",
    "entity_uri",
    "from_graph",
    "load_record",
    "normalize",
    "to_graph",
    "to_jsonld",
]
