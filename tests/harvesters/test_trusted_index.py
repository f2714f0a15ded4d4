"""Trusting another index: the trusted list, the origins fixed at registration, and the
authority rules of an index's feed members (harvesters/sources.py, readers/index.py)."""

from __future__ import annotations

import pyoxigraph as ox

from harvesters.model import Source
from harvesters.readers.index import index_members
from harvesters.sources import is_trusted, origins_of

SPACE = "http://idx.test/index/"
N = ox.NamedNode
PROV = "http://www.w3.org/ns/prov#"
VERSION_OF = N("http://purl.org/dc/terms/isVersionOf")
NAME = N("https://schema.org/name")


def test_trusted_list_compares_normalized_entry_urls():
    trusted = ["HTTP://Idx.test:80/index/", "not a url"]
    assert is_trusted("http://idx.test/index", trusted)
    assert not is_trusted("http://idx.test/other", trusted)
    assert not is_trusted("http://evil.test/index", trusted)
    assert not is_trusted("javascript:alert(1)", trusted)


def test_origins_come_from_the_registration_and_unusable_ones_are_left_out():
    source = Source("i", "http://idx.test/index", SPACE, None, None, kind="index", options={
        "origins": [{"entry_url": "http://a.test/", "uri_space": "http://a.test/", "name": "A"},
                    {"entry_url": "http://b.test/", "uri_space": "not a space"},
                    {"uri_space": "http://c.test/"}]})
    assert list(origins_of(source)) == ["http://a.test/"]
    assert origins_of(Source("n", "http://a.test/", "http://a.test/", None, None)) == {}


def member(seq: int, entity: str, origin: str) -> list[ox.Triple]:
    m = N(f"{SPACE}feed/members/{seq}")
    return [ox.Triple(m, VERSION_OF, N(entity)), ox.Triple(m, N(PROV + "wasDerivedFrom"),
                                                           N(origin)),
            ox.Triple(m, N(PROV + "hadPrimarySource"), N(entity + "/versions/3")),
            ox.Triple(m, NAME, ox.Literal("x")),
            ox.Triple(N(f"{SPACE}feed/members/{seq}#address"), NAME, ox.Literal("y"))]


def test_members_must_name_a_known_origin_whose_space_holds_their_entity():
    source = Source("i", "http://idx.test/index", SPACE, None, None, kind="index", options={
        "origins": [{"entry_url": "http://a.test/", "uri_space": "http://a.test/"}]})
    triples = (member(1, "http://a.test/actors/1", "http://a.test/")
               + member(2, "http://b.test/actors/1", "http://a.test/")  # outside A's space
               + member(3, "http://a.test/actors/2", "http://b.test/"))  # unknown origin
    found, origin_of, dropped = index_members(triples, SPACE, origins_of(source))
    assert [m.entity for m in found] == ["http://a.test/actors/1"]
    assert {str(t) for t in found[0].triples} == {
        '<http://a.test/actors/1> <https://schema.org/name> "x"',
        '<http://a.test/actors/1#address> <https://schema.org/name> "y"'}
    assert origin_of[f"{SPACE}feed/members/1"].version == "http://a.test/actors/1/versions/3"
    assert dropped.count == 8 and len(dropped.examples) == 2
