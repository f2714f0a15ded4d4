"""The node's DCAT-AP.de catalog, so CKAN portals (GovData) can harvest a node unchanged.

One dcat:Catalog; one dcat:Dataset per collection with a distribution per
dump format and per page format; two dcat:DataService entries (the LDES feed
and the SPARQL endpoint). Property choices follow DCAT-AP 3.0 and DCAT-AP.de
3.0 (spec/03_overview_table.md): every mandatory property is present, and
DCAT-AP.de's additions (dct:publisher on datasets and data services,
dct:license on distributions). Objects of range-checked properties are typed
(dct:MediaType, dct:MediaTypeOrExtent, dct:LicenseDocument, ...) as DCAT-AP
3.0's range shapes (shacl/range.ttl) expect; controlled vocabularies are the
ones DCAT-AP.de names (spec/05_vocabularies.md): EU file types, data themes,
languages and access rights, IANA media types, the DCAT-AP.de licence list and
the political geocoding lists.
"""

from __future__ import annotations

from rdflib import Graph, Literal, URIRef

from vocab.namespaces import DCAT, DCTERMS, FOAF, RDF, SKOS

from .node import (
    CATALOG_PATH,
    DCATDE,
    FEED_PATH,
    LDES_SPEC,
    MUNICIPALITY_KEY_BASE,
    MUNICIPALITY_LEVEL,
    ONTOLOGY,
    SPARQL_PATH,
    SPARQL_PROTOCOL,
    VCARD,
    DumpLink,
    NodeInfo,
    add_publisher,
    agent_iri,
    dataset_iri,
    new_graph,
    timestamp,
)

__all__ = ["COLLECTION_TEXTS", "catalog_graph"]

EU = "http://publications.europa.eu/resource/authority/"
IANA = "http://www.iana.org/assignments/media-types/"
PUBLIC = URIRef(EU + "access-right/PUBLIC")
DATA_THEMES = URIRef(EU + "data-theme")
LANGUAGES = {"de": URIRef(EU + "language/DEU"), "en": URIRef(EU + "language/ENG")}
GZIP = URIRef(IANA + "application/gzip")
# EU data themes used here, with their labels (DCAT-AP 3.0: every skos:Concept has one).
THEMES = {
    "SOCI": {"de": "Bevölkerung und Gesellschaft", "en": "Population and society"},
    "ECON": {"de": "Wirtschaft und Finanzen", "en": "Economy and finance"},
}
# Dump extension -> (EU file type, label); page formats -> (EU file type, media type).
FILE_TYPES = {"nt": ("RDF_N_TRIPLES", "N-Triples"), "ttl": ("RDF_TURTLE", "Turtle"),
              "jsonld": ("JSON_LD", "JSON-LD"), "csv": ("CSV", "CSV")}
PAGES = (("html", "HTML", "text/html", ""), ("jsonld", "JSON_LD", "application/ld+json",
                                               ".jsonld"))

# title, description and keywords of each collection's dataset, in German and English.
COLLECTION_TEXTS: dict[str, dict[str, tuple[str, str, tuple[str, ...]]]] = {
    "actors": {
        "de": ("Akteur*innen", "Vereine, Initiativen, Wohlfahrtsverbände, Stiftungen, "
               "Freiwilligenagenturen, Ämter und digitale Projekte der lokalen "
               "Zivilgesellschaft mit Kontaktstellen, Handlungsfeldern und Zielgruppen.",
               ("Zivilgesellschaft", "Ehrenamt", "Vereine", "Engagement")),
        "en": ("Actors", "Associations, initiatives, welfare organisations, foundations, "
               "volunteer agencies, public offices and digital projects of local civil "
               "society with contact points, fields of action and target groups.",
               ("civil society", "volunteering", "associations")),
    },
    "offers": {
        "de": ("Angebote", "Beratungs-, Bildungs-, Begegnungs- und Unterstützungsangebote "
               "der Akteur*innen.", ("Angebote", "Beratung", "Engagement")),
        "en": ("Offers", "Counselling, education, meeting and support offers of the actors.",
               ("offers", "counselling", "civil society")),
    },
    "events": {
        "de": ("Veranstaltungen", "Veranstaltungen der Akteur*innen mit Ort und Zeit.",
               ("Veranstaltungen", "Engagement")),
        "en": ("Events", "Events of the actors with place and time.",
               ("events", "civil society")),
    },
    "projects": {
        "de": ("Projekte", "Projekte der Zivilgesellschaft, ihre Träger und Förderer.",
               ("Projekte", "Zivilgesellschaft")),
        "en": ("Projects", "Civil-society projects, who runs them and who funds them.",
               ("projects", "civil society")),
    },
    "funding-programmes": {
        "de": ("Förderprogramme", "Förderprogramme für Engagement mit Fördergebern, "
               "Bewerbungsfristen und Förderbedingungen.",
               ("Förderung", "Förderprogramme", "Engagement")),
        "en": ("Funding programmes", "Funding programmes for civic engagement with funders, "
               "application deadlines and eligibility.",
               ("funding", "grants", "civil society")),
    },
    "cooperations": {
        "de": ("Kooperationen", "Kooperationen zwischen Akteur*innen und ihre Ebenen "
               "(normativ, fachlich, wirtschaftlich).", ("Kooperation", "Netzwerke")),
        "en": ("Cooperations", "Cooperations between actors and their levels (normative, "
               "professional, economic).", ("cooperation", "networks")),
    },
}
_THEMES_BY_COLLECTION = {"funding-programmes": ("SOCI", "ECON")}


def catalog_graph(info: NodeInfo) -> Graph:
    """The whole catalog as one graph (DCAT-AP 3.0 / DCAT-AP.de 3.0)."""
    g = new_graph()
    base = info.base
    catalog = URIRef(base + CATALOG_PATH)
    publisher = add_publisher(g, info)
    g.add((catalog, RDF.type, DCAT.Catalog))
    g.add((catalog, DCTERMS.title, Literal(info.name, lang="de")))
    g.add((catalog, DCTERMS.title, Literal(info.name, lang="en")))
    place = f" in {info.city}" if info.city else ""
    g.add((catalog, DCTERMS.description, Literal(
        info.description or f"Offene Daten über die lokale Zivilgesellschaft{place}: "
        "Akteur*innen, Angebote, Veranstaltungen, Projekte, Förderprogramme und "
        "Kooperationen.", lang="de")))
    g.add((catalog, DCTERMS.description, Literal(
        f"Open data about local civil society{place}: actors, offers, events, projects, "
        "funding programmes and cooperations.", lang="en")))
    g.add((catalog, DCTERMS.publisher, publisher))
    _license(g, catalog, info)
    if info.modified:
        g.add((catalog, DCTERMS.modified, timestamp(info.modified)))
    if info.issued:
        g.add((catalog, DCTERMS.issued, timestamp(info.issued)))
    for language in LANGUAGES.values():
        g.add((catalog, DCTERMS.language, language))
        g.add((language, RDF.type, DCTERMS.LinguisticSystem))
    homepage = URIRef(base + "/")
    g.add((catalog, FOAF.homepage, homepage))
    g.add((homepage, RDF.type, FOAF.Document))
    # DCAT-AP.de: the theme taxonomy is at least the EU data themes.
    g.add((catalog, DCAT.themeTaxonomy, DATA_THEMES))
    g.add((DATA_THEMES, RDF.type, SKOS.ConceptScheme))
    g.add((DATA_THEMES, DCTERMS.title, Literal("Data Theme", lang="en")))
    _spatial(g, catalog, info, political=False)
    contact = _contact_point(g, info)
    if contact is not None:
        g.add((catalog, DCAT.contactPoint, contact))
    datasets = []
    for coll in info.collections:
        dataset = _dataset(g, info, coll, contact)
        g.add((catalog, DCAT.dataset, dataset))
        datasets.append(dataset)
    for service in _services(g, info, datasets, contact):
        g.add((catalog, DCAT.service, service))
    return g


def _dataset(g: Graph, info: NodeInfo, coll, contact) -> URIRef:
    base = info.base
    dataset = dataset_iri(base, coll.collection)
    texts = COLLECTION_TEXTS.get(coll.collection) or {
        "en": (coll.collection, coll.collection, ())}
    g.add((dataset, RDF.type, DCAT.Dataset))
    for lang, (title, description, keywords) in texts.items():
        place = f" ({info.city})" if info.city else ""
        g.add((dataset, DCTERMS.title, Literal(title + place, lang=lang)))
        g.add((dataset, DCTERMS.description, Literal(description, lang=lang)))
        for keyword in keywords:
            g.add((dataset, DCAT.keyword, Literal(keyword, lang=lang)))
    if info.city:
        g.add((dataset, DCAT.keyword, Literal(info.city)))
    g.add((dataset, DCTERMS.identifier, Literal(str(dataset))))
    g.add((dataset, DCTERMS.publisher, agent_iri(base)))
    if info.contributor_id:
        g.add((dataset, DCATDE.contributorID, URIRef(info.contributor_id)))
    if coll.modified:
        g.add((dataset, DCTERMS.modified, timestamp(coll.modified)))
    for code in _THEMES_BY_COLLECTION.get(coll.collection, ("SOCI",)):
        theme = URIRef(f"{EU}data-theme/{code}")
        g.add((dataset, DCAT.theme, theme))
        g.add((theme, RDF.type, SKOS.Concept))
        g.add((theme, SKOS.inScheme, DATA_THEMES))
        for lang, label in THEMES[code].items():
            g.add((theme, SKOS.prefLabel, Literal(label, lang=lang)))
    g.add((dataset, DCTERMS.accessRights, PUBLIC))
    g.add((PUBLIC, RDF.type, DCTERMS.RightsStatement))
    g.add((dataset, DCTERMS.conformsTo, ONTOLOGY))
    g.add((ONTOLOGY, RDF.type, DCTERMS.Standard))
    for language in LANGUAGES.values():
        g.add((dataset, DCTERMS.language, language))
    landing = URIRef(f"{base}/{coll.collection}")
    g.add((dataset, DCAT.landingPage, landing))
    g.add((landing, RDF.type, FOAF.Document))
    _spatial(g, dataset, info, political=True)
    if contact is not None:
        g.add((dataset, DCAT.contactPoint, contact))
    for dump in info.dumps:
        if dump.collection == coll.collection:
            g.add((dataset, DCAT.distribution, _dump_distribution(g, info, dump)))
    for page in PAGES:
        g.add((dataset, DCAT.distribution, _page_distribution(g, info, coll.collection, page)))
    return dataset


def _dump_distribution(g: Graph, info: NodeInfo, dump: DumpLink) -> URIRef:
    file_type, label = FILE_TYPES[dump.extension]
    dist = URIRef(f"{info.base}{CATALOG_PATH}#{dump.collection}-dump-{dump.extension}")
    de, en = _collection_titles(dump.collection)
    _distribution(g, info, dist, file_type, dump.media_type,
                  {"de": f"{de}: vollständiger Abzug als {label} (gzip)",
                   "en": f"{en}: full dump as {label} (gzip)"})
    url = URIRef(dump.url)
    g.add((dist, DCAT.accessURL, url))
    g.add((dist, DCAT.downloadURL, url))
    # DCAT 3 §6.8: mediaType is the content's type; the file is gzip-compressed.
    g.add((dist, DCAT.compressFormat, GZIP))
    g.add((GZIP, RDF.type, DCTERMS.MediaType))
    if dump.extension != "csv":
        g.add((dist, DCTERMS.conformsTo, ONTOLOGY))
    if dump.byte_size is not None:
        g.add((dist, DCAT.byteSize, Literal(dump.byte_size)))
    if dump.modified is not None:
        g.add((dist, DCTERMS.modified, timestamp(dump.modified)))
    return dist


def _page_distribution(g: Graph, info: NodeInfo, collection: str, page) -> URIRef:
    name, file_type, media_type, suffix = page
    dist = URIRef(f"{info.base}{CATALOG_PATH}#{collection}-page-{name}")
    de, en = _collection_titles(collection)
    label = "Webseiten" if name == "html" else "JSON-LD-Seiten"
    _distribution(g, info, dist, file_type, media_type,
                  {"de": f"{de}: {label} (seitenweise, filterbar)",
                   "en": f"{en}: {'web' if name == 'html' else 'JSON-LD'} pages "
                         "(paginated, filterable)"})
    g.add((dist, DCAT.accessURL, URIRef(f"{info.base}/{collection}{suffix}")))
    return dist


def _distribution(g: Graph, info: NodeInfo, dist: URIRef, file_type: str, media_type: str,
                  titles: dict[str, str]) -> None:
    g.add((dist, RDF.type, DCAT.Distribution))
    for lang, title in titles.items():
        g.add((dist, DCTERMS.title, Literal(title, lang=lang)))
    fmt = URIRef(f"{EU}file-type/{file_type}")
    g.add((dist, DCTERMS["format"], fmt))
    g.add((fmt, RDF.type, DCTERMS.MediaTypeOrExtent))
    iana = URIRef(IANA + media_type)
    g.add((dist, DCAT.mediaType, iana))
    g.add((iana, RDF.type, DCTERMS.MediaType))
    _license(g, dist, info)


def _services(g: Graph, info: NodeInfo, datasets: list[URIRef], contact) -> list[URIRef]:
    base = info.base
    services = []
    for key, path, standard, titles in (
        ("feed", FEED_PATH, LDES_SPEC, {
            "de": ("Änderungsfeed (LDES)", "Jede Änderung und Löschung als Linked Data "
                   "Event Stream: Harvester bleiben aktuell, ohne alles neu zu laden."),
            "en": ("Change feed (LDES)", "Every change and deletion as a Linked Data Event "
                   "Stream: harvesters stay current without downloading everything again.")}),
        ("sparql", SPARQL_PATH, SPARQL_PROTOCOL, {
            "de": ("SPARQL-Endpunkt", "Lesende SPARQL-1.1-Abfragen über alle Daten des "
                   "Knotens."),
            "en": ("SPARQL endpoint", "Read-only SPARQL 1.1 queries over all data of the "
                   "node.")}),
    ):
        service = URIRef(f"{base}{CATALOG_PATH}#{key}")
        endpoint = URIRef(base + path)
        g.add((service, RDF.type, DCAT.DataService))
        for lang, (title, description) in titles.items():
            g.add((service, DCTERMS.title, Literal(title, lang=lang)))
            g.add((service, DCTERMS.description, Literal(description, lang=lang)))
        g.add((service, DCAT.endpointURL, endpoint))
        if key == "sparql":
            # SPARQL 1.1 SD §2: the endpoint describes itself when asked for RDF.
            g.add((service, DCAT.endpointDescription, endpoint))
        g.add((service, DCTERMS.conformsTo, standard))
        g.add((standard, RDF.type, DCTERMS.Standard))
        for dataset in datasets:
            g.add((service, DCAT.servesDataset, dataset))
        g.add((service, DCTERMS.publisher, agent_iri(base)))
        _license(g, service, info)
        g.add((service, DCTERMS.accessRights, PUBLIC))
        if contact is not None:
            g.add((service, DCAT.contactPoint, contact))
        services.append(service)
    return services


def _collection_titles(collection: str) -> tuple[str, str]:
    texts = COLLECTION_TEXTS.get(collection)
    if collection == "all" or texts is None:
        return ("Alle Daten", "All data") if collection == "all" else (collection, collection)
    return texts["de"][0], texts["en"][0]


def _license(g: Graph, subject: URIRef, info: NodeInfo) -> None:
    if info.license:
        licence = URIRef(info.license)
        g.add((subject, DCTERMS.license, licence))
        g.add((licence, RDF.type, DCTERMS.LicenseDocument))


def _contact_point(g: Graph, info: NodeInfo) -> URIRef | None:
    """A vcard:Kind with an e-mail IRI (DCAT-AP.de: e-mail, URL or telephone required)."""
    if not info.contact_email:
        return None
    contact = URIRef(f"{info.base}/#contact")
    g.add((contact, RDF.type, VCARD.Kind))
    g.add((contact, VCARD.fn, Literal(info.publisher)))
    g.add((contact, VCARD.hasEmail, URIRef("mailto:" + info.contact_email)))
    return contact


def _spatial(g: Graph, subject: URIRef, info: NodeInfo, *, political: bool) -> None:
    """The covered municipality from its official key (DCAT-AP.de political geocoding)."""
    if not info.municipality_key:
        return
    place = URIRef(MUNICIPALITY_KEY_BASE + info.municipality_key)
    g.add((subject, DCTERMS.spatial, place))
    g.add((place, RDF.type, DCTERMS.Location))
    if political:  # dcatde:politicalGeocoding* are dataset properties (spec §Datensatz)
        g.add((subject, DCATDE.politicalGeocodingURI, place))
        g.add((subject, DCATDE.politicalGeocodingLevelURI, MUNICIPALITY_LEVEL))
