"""GeoJSON (RFC 7946) for maps: a FeatureCollection, or one Feature for an entity.

Positions are [longitude, latitude] (RFC 7946 §3.1.1; WGS 84 is implied, so no
"crs" member, §4). Entities without coordinates stay in the collection with
``"geometry": null`` (§3.2), so a count of features is a count of entities.
The feature ``id`` is the entity IRI (§3.2 recommends a common identifier).
Properties are kept flat and small: the IRI again as ``id`` (many tools show
only properties), ``kind``, the ``name`` map by language, ``url`` and the
concept fields as notations; everything else is one link away in JSON-LD.
"""

from __future__ import annotations

from typing import Any

import orjson

from vocab.fields import entity
from vocab.mapping import entity_uri

from .registry import Format, Payload, register

__all__ = ["FORMAT", "feature", "render"]


def render(payload: Payload) -> bytes:
    features = [feature(payload.kind, r, payload.base) for r in payload.records]
    if payload.single:
        (only,) = features
        return orjson.dumps(only)
    return orjson.dumps({"type": "FeatureCollection", "features": features})


def feature(kind: str, record: dict, base: str) -> dict[str, Any]:
    """One GeoJSON Feature for a record (geometry null when it has no ``geo``)."""
    iri = str(entity_uri(base, kind, record["id"]))
    geo = record.get("geo")
    geometry = None
    if geo and geo.get("latitude") is not None and geo.get("longitude") is not None:
        geometry = {"type": "Point",
                    "coordinates": [float(geo["longitude"]), float(geo["latitude"])]}
    properties: dict[str, Any] = {"id": iri, "kind": kind}
    if record.get("name"):
        properties["name"] = dict(record["name"])
    if record.get("url"):
        properties["url"] = record["url"]
    for f in entity(kind).fields:
        if f.kind == "concept" and record.get(f.key):
            properties[f.key] = record[f.key]
    return {"type": "Feature", "id": iri, "geometry": geometry, "properties": properties}


FORMAT = Format(
    name="geojson",
    media_types=("application/geo+json",),
    extensions=("geojson",),
    render=render,
)
register(FORMAT)
