"""HTML pages as one more format of the exports registry, and their helpers.

`init_app` registers the "html" format through the same `exports.register` every
other format uses (house style: no special path for built-in formats), adds the
Jinja filters the templates need and a context processor with the node's
identity, so that error pages rendered by `service.problems` share the layout.

`schema_org` projects a record onto schema.org for search engines: the page
embeds it as JSON-LD via ``|tojson``, which escapes ``<``, ``>`` and ``&`` so
that no data can close the ``<script>`` element (PITFALLS: serializer output
marked ``|safe`` could).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from typing import Any
from urllib.parse import urlsplit

from flask import Flask, current_app, render_template
from rdflib import Literal, URIRef
from rdflib.namespace import RDF, XSD

import exports
from vocab import ENTITIES, entity, to_graph
from vocab.namespaces import SCHEMA
from vocab.terms import concept_label, notations

__all__ = [
    "FIELD_LABELS",
    "HTML",
    "INBOUND",
    "alternates",
    "facet_form",
    "init_app",
    "outbound_refs",
    "safe_href",
    "schema_org",
    "text",
    "text_lang",
]

SCHEMA_CONTEXT = "https://schema.org/"
_SCHEMA_NS = str(SCHEMA)
_SAFE_SCHEMES = {"http", "https", "mailto"}
# Browsers drop ASCII tab and newlines anywhere in a URL and trim C0 controls and
# spaces at both ends (WHATWG URL §4.4), so "java\tscript:" still runs script.
_URL_NOISE = re.compile(r"[\x00-\x20\x7f]")

# German labels of record keys (the page language is German). A test checks that
# every field of vocab.fields has one, so a new field never shows up unlabelled.
FIELD_LABELS: dict[str, str] = {
    "name": "Name", "description": "Beschreibung", "url": "Website",
    "alternateName": "Auch bekannt als", "actorTypes": "Akteurstyp", "legalForm": "Rechtsform",
    "engagementMode": "Engagementform", "fieldsOfAction": "Handlungsfelder",
    "targetGroups": "Zielgruppen", "supportTopics": "Unterstützungsthemen", "status": "Status",
    "email": "E-Mail", "telephone": "Telefon", "address": "Adresse", "geo": "Koordinaten",
    "openingHours": "Öffnungszeiten", "contactPoints": "Kontaktstellen",
    "languages": "Sprachen", "areaServed": "Gebiet",
    "parentOrganization": "Übergeordnete Organisation",
    "memberOf": "Mitglied von", "participatesIn": "Beteiligt an", "fundedBy": "Gefördert von",
    "foundingDate": "Gründung", "dissolutionDate": "Auflösung", "registerCourt": "Registergericht",
    "registerNumber": "Registernummer", "wikidata": "Wikidata", "created": "Angelegt",
    "modified": "Geändert", "lastConfirmed": "Zuletzt bestätigt", "license": "Lizenz",
    "offerTypes": "Angebotsart", "provider": "Anbieter*in", "availableLanguage": "Sprachen",
    "startDate": "Beginn", "endDate": "Ende", "organizer": "Veranstalter*in",
    "inLanguage": "Sprachen", "operatedBy": "Betrieben von", "funder": "Fördergeber*in",
    "amount": "Fördervolumen", "currency": "Währung", "applicationStart": "Bewerbungsbeginn",
    "applicationEnd": "Bewerbungsschluss", "applicationPeriod": "Bewerbungszeitraum",
    "eligibility": "Förderbedingungen", "partners": "Partner*innen",
    "levels": "Kooperationsebene", "since": "Seit", "until": "Bis",
    # nested nodes
    "streetAddress": "Straße", "postalCode": "Postleitzahl", "addressLocality": "Ort",
    "addressRegion": "Region", "addressCountry": "Land", "latitude": "Breite",
    "longitude": "Länge", "dayOfWeek": "Tage", "opens": "öffnet", "closes": "schließt",
    "contactType": "Funktion", "personName": "Ansprechperson",
    "consentRecorded": "Einwilligung dokumentiert",
}

COLLECTION_LABELS: dict[str, str] = {
    "actors": "Akteur*innen", "offers": "Angebote", "events": "Veranstaltungen",
    "projects": "Projekte", "funding-programmes": "Förderprogramme",
    "cooperations": "Kooperationen",
}

# Entities that point at an entity, listed on its page: (kind, ref field, heading).
INBOUND = (
    ("actor", "parentOrganization", "Untergliederungen"),
    ("actor", "memberOf", "Mitglieder"),
    ("actor", "participatesIn", "Beteiligte"),
    ("actor", "fundedBy", "Geförderte Akteur*innen"),
    ("cooperation", "partners", "Kooperationen"),
    ("offer", "provider", "Angebote"),
    ("project", "operatedBy", "Projekte"),
    ("project", "fundedBy", "Geförderte Projekte"),
    ("event", "organizer", "Veranstaltungen"),
    ("funding-programme", "funder", "Förderprogramme"),
)
KIND_LABELS: dict[str, str] = {
    "actor": "Akteur*in", "offer": "Angebot", "event": "Veranstaltung", "project": "Projekt",
    "funding-programme": "Förderprogramm", "cooperation": "Kooperation",
}

WEEKDAY_NAMES = {"Monday": "Montag", "Tuesday": "Dienstag", "Wednesday": "Mittwoch",
                 "Thursday": "Donnerstag", "Friday": "Freitag", "Saturday": "Samstag",
                 "Sunday": "Sonntag"}
WEEKDAY_LABELS = {day: name[:2] for day, name in WEEKDAY_NAMES.items()}

FORMAT_NAMES = {"html": "HTML", "jsonld": "JSON-LD", "turtle": "Turtle",
                "ntriples": "N-Triples", "rdfxml": "RDF/XML", "csv": "CSV",
                "geojson": "GeoJSON", "xlsx": "Excel (XLSX)"}
PAGER_LABELS = {"first": "Erste Seite", "prev": "Vorherige Seite", "next": "Nächste Seite",
                "last": "Letzte Seite"}
_DCAT_AP_LICENSES = "http://dcat-ap.de/def/licenses/"


# --------------------------------------------------------------------------- filters


def safe_href(url: Any) -> str:
    """``url`` if it is http(s), mailto or relative; "#" for anything else.

    Autoescaping keeps data inside the attribute but does not stop a
    ``javascript:`` or ``data:`` URL from running when clicked (PITFALLS).
    """
    if not isinstance(url, str):
        return "#"
    cleaned = _URL_NOISE.sub("", url)
    if not cleaned:
        return "#"
    try:
        scheme = urlsplit(cleaned).scheme.lower()
    except ValueError:
        return "#"
    if scheme and scheme not in _SAFE_SCHEMES:
        return "#"
    if not scheme and ":" in cleaned.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]:
        return "#"  # a colon before the first slash is a scheme urlsplit did not recognise
    return url.strip()


def text(langmap: Any, lang: str = "de") -> str:
    """The text of a language map in ``lang``, else German, English, or the first one.

    A plain string (e.g. NODE_DESCRIPTION from the configuration) is its own text.
    """
    if isinstance(langmap, str):
        return langmap
    chosen = text_lang(langmap, lang)
    return "" if chosen is None else str(langmap[chosen])


def text_items(langmap: Any, lang: str = "de") -> list[tuple[str, str]]:
    """All (language, text) pairs, the one `text` picks first."""
    if isinstance(langmap, str):
        return [("de", langmap)]
    if not isinstance(langmap, Mapping) or not langmap:
        return []
    chosen = text_lang(langmap, lang)
    return [(chosen, str(langmap[chosen]))] + [(k, str(v)) for k, v in langmap.items()
                                                if k != chosen]


def text_lang(langmap: Any, lang: str = "de") -> str | None:
    """The language `text` picks (for a ``lang`` attribute), None for plain strings."""
    if not isinstance(langmap, Mapping) or not langmap:
        return None
    for candidate in (lang, "de", "en"):
        if candidate in langmap:
            return candidate
    return next(iter(langmap))


def label(notation: Any, scheme: str, lang: str = "de") -> str:
    """The preferred label of a concept (its notation when the scheme lacks one)."""
    return concept_label(scheme, str(notation), lang)


def human_date(value: Any) -> str:
    """A date or date-time in German notation ("01.06.2015", "31.01.2026, 12:00 UTC")."""
    if not isinstance(value, str):
        return ""
    try:
        if "T" in value:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
            zone = "UTC" if value.endswith("Z") else parsed.strftime("%z")
            return f"{parsed:%d.%m.%Y, %H:%M} {zone}".strip()
        return f"{date.fromisoformat(value):%d.%m.%Y}"
    except ValueError:
        return value


def human_number(value: Any) -> str:
    """A number with a German decimal comma and no exponent."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return str(value)
    out = f"{value:,.6f}".rstrip("0").rstrip(".")
    return out.replace(",", "\u202f").replace(".", ",")


def license_name(url: Any) -> str:
    """A short name for a licence URL ("CC-BY 4.0" for DCAT-AP.de's cc-by/4.0)."""
    url = str(url or "")
    if url.startswith(_DCAT_AP_LICENSES):
        return url[len(_DCAT_AP_LICENSES):].replace("/", " ").upper()
    return url


def summary_meta(spec: Any, record: Mapping[str, Any], lang: str = "de") -> list[str]:
    """One line about a list entry: its kind concepts, start date and place."""
    out = []
    concept = next((f for f in spec.fields if f.kind == "concept"), None)
    if concept is not None and record.get(concept.key):
        value = record[concept.key]
        out += [label(v, concept.scheme, lang) for v in (value if concept.many else [value])]
    if record.get("startDate"):
        out.append(human_date(record["startDate"]))
    locality = (record.get("address") or {}).get("addressLocality")
    if locality:
        out.append(locality)
    return out


# --------------------------------------------------------------------------- schema.org


def schema_org(kind: str, record: Mapping[str, Any], base: str) -> dict[str, Any]:
    """The record projected onto schema.org, as a JSON-LD object.

    Built from `vocab.mapping.to_graph` (the one mapping): only triples whose
    predicate is a schema.org term survive, and of the rdf:type triples only
    schema.org classes. Fragment nodes (address, geo, ...) are embedded.
    """
    graph = to_graph(kind, _consented(record), base)
    kept: dict[URIRef, list[tuple[URIRef, Any]]] = {}
    for s, p, o in graph:
        if p == RDF.type:
            if not str(o).startswith(_SCHEMA_NS):
                continue
        elif not str(p).startswith(_SCHEMA_NS):
            continue
        kept.setdefault(s, []).append((p, o))
    root = URIRef(f"{base.rstrip('/')}/{entity(kind).collection}/{record['id']}")
    return {"@context": SCHEMA_CONTEXT, **_node_object(root, kept, {root})}


def _consented(record: Mapping[str, Any]) -> dict[str, Any]:
    """The record without named persons whose consent is not recorded.

    `load_record` already refuses them; the page does not rely on that alone.
    """
    out = dict(record)
    points = record.get("contactPoints")
    if points:
        out["contactPoints"] = [
            point if point.get("consentRecorded") is True
            else {k: v for k, v in point.items() if k != "personName"} for point in points]
    return out


def _node_object(subject: URIRef, kept: Mapping, seen: set) -> dict[str, Any]:
    obj: dict[str, Any] = {"@id": str(subject)}
    types = sorted(str(o)[len(_SCHEMA_NS):] for p, o in kept.get(subject, ()) if p == RDF.type)
    if types:
        obj["@type"] = types[0] if len(types) == 1 else types
    props: dict[str, list] = {}
    for p, o in sorted(kept.get(subject, ()), key=lambda po: (str(po[0]), po[1].n3())):
        if p == RDF.type:
            continue
        if isinstance(o, URIRef) and o in kept and o not in seen:
            value = _node_object(o, kept, seen | {o})
        else:
            value = _value_object(o)
        props.setdefault(str(p)[len(_SCHEMA_NS):], []).append(value)
    for key, values in props.items():
        obj[key] = values[0] if len(values) == 1 else values
    return obj


def _value_object(o: Any) -> Any:
    if isinstance(o, URIRef):
        return {"@id": str(o)}
    if isinstance(o, Literal):
        if o.language:
            return {"@value": str(o), "@language": o.language}
        if o.datatype is None or o.datatype == XSD.string:
            return str(o)
        return {"@value": str(o), "@type": str(o.datatype)}
    return {"@id": str(o)}  # no blank nodes in our mapping; keep the shape regardless


# --------------------------------------------------------------------------- page context


def facet_form(spec: Any, filters: Mapping[str, list[str]], keys: Iterable[str]
               ) -> list[dict[str, Any]]:
    """The filter form: every facet, concepts with their labels, current values selected."""
    out = []
    for key in keys:
        f = spec.field(key)
        options = []
        if f.kind == "concept":
            options = sorted(((n, concept_label(f.scheme, n)) for n in notations(f.scheme)),
                             key=lambda o: o[1].lower())
        out.append({"key": key, "label": FIELD_LABELS.get(key, key), "kind": f.kind,
                    "options": options, "selected": filters.get(key, [])})
    return out


def outbound_refs(spec: Any, record: Mapping[str, Any]) -> list[str]:
    """Every entity IRI the record refers to."""
    refs = []
    for f in spec.fields:
        if f.kind == "ref" and record.get(f.key):
            refs.extend(record[f.key] if f.many else [record[f.key]])
    return refs


def alternates(current: exports.Format, names: Iterable[str],
               url_for_extension: Callable[[str], str]) -> list[dict[str, str]]:
    """Links to the other formats of a page (HTML ``rel=alternate`` and downloads)."""
    names = set(names)
    return [{"name": f.name, "media_type": f.media_types[0],
             "href": url_for_extension(f.extensions[0])}
            for f in exports.formats()
            if f.name in names and f.name != current.name and f.extensions]


# --------------------------------------------------------------------------- the format


def _render(payload: exports.Payload) -> bytes:
    """An entity page or a collection page, from the payload and its ``extra``."""
    extra = dict(payload.extra)
    spec = entity(payload.kind)
    if payload.single:
        (record,) = payload.records
        html = render_template("entity.html", spec=spec, record=record, base=payload.base,
                               jsonld=schema_org(payload.kind, record, payload.base), **extra)
    else:
        graph = [schema_org(payload.kind, r, payload.base) for r in payload.records]
        for item in graph:
            del item["@context"]
        html = render_template("collection.html", spec=spec, records=payload.records,
                               base=payload.base, page_url=payload.page_url,
                               jsonld={"@context": SCHEMA_CONTEXT, "@graph": graph}, **extra)
    return html.encode("utf-8")


HTML = exports.Format(
    name="html",
    media_types=("text/html",),
    extensions=("html",),
    render=_render,
)


def _node_info() -> dict[str, Any]:
    config = current_app.config
    return {
        "node": {
            "name": config["NODE_NAME"],
            "city": config["CITY"],
            "description": config["NODE_DESCRIPTION"],
            "license": config["LICENSE"],
            "contact": config["CONTACT_EMAIL"],
            "sample_data": config["SAMPLE_DATA"],
        },
        "collections": [(e.collection, COLLECTION_LABELS.get(e.collection, e.collection))
                        for e in ENTITIES.values()],
    }


def init_app(app: Flask) -> None:
    exports.register(HTML)
    app.add_template_filter(safe_href, "safe_href")
    app.add_template_filter(label, "label")
    app.add_template_filter(text, "text")
    app.add_template_filter(human_date, "human_date")
    app.add_template_filter(human_number, "human_number")
    app.add_template_filter(license_name, "license_name")
    for function in (text_lang, text_items, summary_meta):
        app.add_template_global(function)
    app.jinja_env.globals.update(
        FIELD_LABELS=FIELD_LABELS, COLLECTION_LABELS=COLLECTION_LABELS,
        KIND_LABELS=KIND_LABELS, WEEKDAY_LABELS=WEEKDAY_LABELS, WEEKDAY_NAMES=WEEKDAY_NAMES,
        FORMAT_NAMES=FORMAT_NAMES, PAGER_LABELS=PAGER_LABELS, ENTITY_SPECS=ENTITIES)
    app.context_processor(_node_info)
