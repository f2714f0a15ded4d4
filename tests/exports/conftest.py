"""Fixtures for the exports tests: realistic records and a dummy html format."""

from __future__ import annotations

import copy

import pytest

import exports

BASE = "http://127.0.0.1:5001"


@pytest.fixture(autouse=True)
def _registry_without_html():
    """Each test starts without "html" (the service may have registered its own
    in this process) and the registry is left as it was found."""
    previous = exports.get("html")
    exports.unregister("html")
    yield
    exports.unregister("html")
    if previous is not None:
        exports.register(previous)


@pytest.fixture
def html_format():
    """A stand-in for the service's "html" format, registered for one test."""
    fmt = exports.Format(
        name="html",
        media_types=("text/html", "application/xhtml+xml"),
        extensions=("html",),
        render=lambda payload: b"<!doctype html><title>atlas</title>",
    )
    exports.register(fmt)
    yield fmt
    exports.unregister("html")


ACTOR = {
    "id": "k7f3q2",
    "name": {"de": "Nachbarschaftshilfe Pieschen e.V.", "en": "Pieschen Neighbourhood Aid"},
    "description": {
        "de": "Wir vermitteln Ehrenamtliche,\nberaten Geflüchtete & begleiten zu Ämtern.",
        "en": "We match volunteers, advise refugees and accompany people to offices.",
        "uk": "Ми підтримуємо біженців у Дрездені.",
    },
    "url": "https://pieschen-hilft.example.org/",
    "alternateName": ["NH Pieschen", "Pieschen hilft"],
    "actorTypes": ["verein", "freiwilligenagentur"],
    "legalForm": "ev",
    "engagementMode": "blended",
    "fieldsOfAction": ["integration", "neighbourhood", "volunteering"],
    "targetGroups": ["refugees", "seniors", "volunteers"],
    "supportTopics": ["networking_exchange"],
    "status": "active",
    "email": "kontakt@pieschen-hilft.example.org",
    "telephone": "+49 351 1234567",
    "address": {
        "streetAddress": "Leipziger Straße 42",
        "postalCode": "01127",
        "addressLocality": "Dresden",
        "addressCountry": "DE",
    },
    "geo": {"latitude": 51.0781, "longitude": 13.7152},
    "openingHours": [
        {"dayOfWeek": ["Monday", "Wednesday"], "opens": "09:00", "closes": "13:00"},
        {"dayOfWeek": ["Thursday"], "opens": "15:30", "closes": "19:00"},
    ],
    "contactPoints": [
        {
            "contactType": {"de": "Beratungsstelle", "en": "Counselling desk"},
            "email": "beratung@pieschen-hilft.example.org",
            "availableLanguage": ["ar", "de", "uk"],
        },
        {
            "contactType": {"de": "Koordination Ehrenamt"},
            "telephone": "+49 351 1234568",
            "personName": "Maria Beispiel",
            "consentRecorded": True,
        },
    ],
    "languages": ["ar", "de", "en", "uk"],
    "areaServed": ["Dresden-Pieschen", "Dresden-Trachau"],
    "memberOf": [f"{BASE}/actors/p0c1x9"],
    "foundingDate": "2015-09-01",
    "registerCourt": "Amtsgericht Dresden",
    "registerNumber": "VR 5678",
    "wikidata": "Q1234567",
    "created": "2024-03-01T10:15:00Z",
    "modified": "2026-01-20T08:00:00Z",
    "lastConfirmed": "2026-01-20",
    "license": "https://creativecommons.org/publicdomain/zero/1.0/",
}

MINIMAL_ACTOR = {
    "id": "p0c1x9",
    "name": {"en": "Digital Volunteers Saxony"},
    "actorTypes": ["digital_project", "network"],
    "engagementMode": "digital",
    "areaServed": ["Sachsen"],
}

OFFER = {
    "id": "o55m1",
    "name": {"de": "Sprachcafé", "fa": "کافه زبان"},
    "offerTypes": ["course", "networking"],
    "provider": f"{BASE}/actors/k7f3q2",
    "availableLanguage": ["de", "fa"],
    "geo": {"latitude": -33.8688, "longitude": 151.2093},
    "address": {"addressLocality": "Sydney", "addressCountry": "AU"},
}


@pytest.fixture(scope="session")
def base() -> str:
    return BASE


@pytest.fixture
def actor() -> dict:
    return copy.deepcopy(ACTOR)


@pytest.fixture
def actors() -> list[dict]:
    return [copy.deepcopy(ACTOR), copy.deepcopy(MINIMAL_ACTOR)]


@pytest.fixture
def offer() -> dict:
    return copy.deepcopy(OFFER)
