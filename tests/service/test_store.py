"""The store: versions, tombstones, the change log, facets and referrers."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from service import db, store
from service.errors import Conflict, Gone, NotFound, PreconditionFailed
from service.models import Change

from ..conftest import BASE

HUB = f"{BASE}/actors/hub"


def _actor(name: str, **extra) -> dict:
    return {"name": {"de": name}, "actorTypes": ["verein"], **extra}


def test_versions_tombstones_and_the_change_log(app):
    with app.app_context():
        s = db.session()
        a = store.create(s, "actor", _actor("A"))
        b = store.replace(s, "actor", a.id, _actor("A2"), expected_version=1)
        with pytest.raises(PreconditionFailed):
            store.replace(s, "actor", a.id, _actor("stale"), expected_version=1)
        assert store.get(s, "actor", a.id).data["name"] == {"de": "A2"}
        store.delete_entity(s, "actor", a.id, expected_version=b.version)
        with pytest.raises(Gone) as gone:
            store.get(s, "actor", a.id)
        assert gone.value.tombstone["version"] == 3
        with pytest.raises(NotFound):
            store.get(s, "actor", "never")
        with pytest.raises(Conflict):  # ids are never reused, not even after deletion
            store.create(s, "actor", _actor("again"), entity_id=a.id)
        log = s.scalars(select(Change).order_by(Change.seq)).all()
        assert [(c.op, c.version) for c in log] == [("create", 1), ("update", 2), ("delete", 3)]
        assert log[1].data["name"] == {"de": "A2"} and log[2].data is None


def test_referrers_give_totals_and_the_newest_few(app):
    with app.app_context():
        s = db.session()
        members = [store.create(s, "actor", _actor(f"M{i}", memberOf=[HUB])) for i in range(5)]
        store.create(s, "offer", {"name": {"de": "Kurs"}, "offerTypes": ["course"],
                                  "provider": HUB})
        store.delete_entity(s, "actor", members[0].id, expected_version=1)
        found = store.referrers(s, HUB, [("actor", "memberOf"), ("offer", "provider"),
                                         ("project", "operatedBy")], limit=2)
        total, newest = found[("actor", "memberOf")]
        assert total == 4
        assert [e.id for e in newest] == [members[4].id, members[3].id]
        assert found[("offer", "provider")][0] == 1
        assert ("project", "operatedBy") not in found
        assert store.referrers(s, f"{BASE}/actors/nobody", [("actor", "memberOf")], 2) == {}


def test_filters_combine_with_and_and_values_with_or(app):
    with app.app_context():
        s = db.session()
        store.create(s, "actor", _actor("Alpha", fieldsOfAction=["education"]))
        store.create(s, "actor", _actor("Beta", fieldsOfAction=["housing"], languages=["ar"]))
        store.create(s, "actor", _actor("Gamma 100%", fieldsOfAction=["housing"]))

        def names(**kw):
            return sorted(e.data["name"]["de"] for e in store.list_page(s, "actor", **kw).items)

        assert names(filters={"fieldsOfAction": ["education", "housing"]}) == [
            "Alpha", "Beta", "Gamma 100%"]
        assert names(filters={"fieldsOfAction": ["housing"], "languages": ["ar"]}) == ["Beta"]
        assert names(q="GAMMA 100%") == ["Gamma 100%"]
        assert names(q="%") == ["Gamma 100%"]  # LIKE wildcards are escaped
