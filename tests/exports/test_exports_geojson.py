"""GeoJSON (RFC 7946): structure, coordinate order, entities without coordinates."""

from __future__ import annotations

import orjson

from exports import Payload, content_type, get
from vocab.mapping import entity_uri

BASE = "http://127.0.0.1:5001"


def render(kind: str, records: list[dict], single: bool = False) -> dict:
    return orjson.loads(get("geojson").render(Payload(kind, records, BASE, single=single)))


def test_collection_is_a_feature_collection(actors):
    doc = render("actor", actors)
    assert set(doc) == {"type", "features"} and doc["type"] == "FeatureCollection"
    assert [f["id"] for f in doc["features"]] == [
        str(entity_uri(BASE, "actor", r["id"])) for r in actors]
    for feature in doc["features"]:
        assert set(feature) == {"type", "id", "geometry", "properties"}
        assert feature["type"] == "Feature"


def test_coordinates_are_longitude_then_latitude(offer):
    # Sydney: a longitude of 151 cannot be a latitude, so the order is unambiguous
    (feature,) = render("offer", [offer])["features"]
    assert feature["geometry"] == {"type": "Point", "coordinates": [151.2093, -33.8688]}


def test_entities_without_coordinates_have_null_geometry(actors):
    with_geo, without_geo = render("actor", actors)["features"]
    assert with_geo["geometry"]["coordinates"] == [13.7152, 51.0781]
    assert without_geo["geometry"] is None


def test_properties_are_small_and_flat(actor):
    feature = render("actor", [actor], single=True)
    iri = str(entity_uri(BASE, "actor", actor["id"]))
    assert feature["type"] == "Feature" and feature["id"] == iri
    assert feature["properties"] == {
        "id": iri,
        "kind": "actor",
        "name": actor["name"],
        "url": actor["url"],
        "actorTypes": actor["actorTypes"],
        "legalForm": "ev",
        "engagementMode": "blended",
        "fieldsOfAction": actor["fieldsOfAction"],
        "targetGroups": actor["targetGroups"],
        "supportTopics": ["networking_exchange"],
        "status": "active",
    }


def test_kinds_without_geo_and_empty_pages():
    project = {"id": "p1", "name": {"de": "Lernpaten"}, "status": "active"}
    (feature,) = render("project", [project])["features"]
    assert feature["geometry"] is None and feature["properties"]["status"] == "active"
    assert render("actor", []) == {"type": "FeatureCollection", "features": []}


def test_media_type():
    fmt = get("geojson")
    assert get("application/geo+json") is fmt and get("geojson") is fmt
    assert content_type(fmt) == "application/geo+json; charset=utf-8"
