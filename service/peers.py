"""Peers: the other nodes and indexes this node knows, and the admin API for them.

A peer is another Engagement Atlas node or an index, known by its entry URL.
The entry-URL description (``/``) lists every peer, so harvesters discover
the federation by following them. Peers are managed with ``atlas peers
add|remove|list`` or the API under ``/api/v1/peers``: reading is public (the
same list is published at ``/`` anyway), writing needs an admin token.
"""

from __future__ import annotations

from datetime import UTC
from urllib.parse import urlsplit

import orjson
from flask import Blueprint, Response, current_app
from marshmallow import RAISE, Schema, ValidationError, fields, post_load, validate, validates
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from . import auth, db
from .api import error_pointers, json_body
from .errors import Conflict, InvalidInput, NotFound
from .models import Peer
from .store import iso, now

__all__ = ["KINDS", "PeerRequest", "add_peer", "bp", "find_peer", "known_peers",
           "normalize_url", "peer_json", "remove_peer"]

bp = Blueprint("peers", __name__, url_prefix="/api/v1/peers")

KINDS = ("node", "index")
MAX_URL = 1000
JSON = "application/json"


# --------------------------------------------------------------------------- the table


def normalize_url(value: str) -> str:
    """A peer's entry URL in one canonical spelling; ValueError says what is wrong.

    http(s) only, with a host; no user name, password, query or fragment.
    Scheme and host are lower-cased and a trailing slash is dropped, so one
    peer cannot be added twice under two spellings.
    """
    text = value.strip()
    if not text or len(text) > MAX_URL or any(c.isspace() or ord(c) < 0x20 for c in text):
        raise ValueError(f"give an http(s) URL of at most {MAX_URL} characters, without spaces")
    parts = urlsplit(text)
    if parts.scheme.lower() not in {"http", "https"} or not parts.hostname:
        raise ValueError("the URL must start with http:// or https:// and name a host")
    if parts.username is not None or parts.password is not None:
        raise ValueError("the URL must not contain a user name or password")
    if parts.query or parts.fragment or "?" in text or "#" in text:
        raise ValueError("the URL must not have a query or a fragment")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("the URL has an invalid port") from None
    host = parts.hostname.lower()
    netloc = (f"[{host}]" if ":" in host else host) + (f":{port}" if port is not None else "")
    return f"{parts.scheme.lower()}://{netloc}{parts.path.rstrip('/')}"


def known_peers(session: Session) -> list[Peer]:
    """Every peer, oldest first."""
    return list(session.scalars(select(Peer).order_by(Peer.id)))


def find_peer(session: Session, url_or_id: str) -> Peer:
    """A peer by its id or its URL (any spelling); raises NotFound."""
    peer = None
    if url_or_id.strip().isdigit():
        peer = session.get(Peer, int(url_or_id))
    else:
        try:
            url = normalize_url(url_or_id)
        except ValueError:
            url = None
        if url is not None:
            peer = session.scalar(select(Peer).where(Peer.url == url))
    if peer is None:
        raise NotFound(f"no peer {url_or_id!r}")
    return peer


def add_peer(session: Session, url: str, kind: str = "node", name: str | None = None,
             *, own_base: str | None = None) -> Peer:
    """Store a peer; ValueError for a bad URL or kind, Conflict when it is known already."""
    url = normalize_url(url)
    if kind not in KINDS:
        raise ValueError(f"the kind must be one of {', '.join(KINDS)}")
    if own_base is not None and url == normalize_url(own_base):
        raise ValueError("that is this node's own URL")
    if session.scalar(select(Peer.id).where(Peer.url == url)) is not None:
        raise Conflict(f"{url} is already a peer")
    peer = Peer(url=url, kind=kind, name=(name or "").strip() or None, added=now())
    session.add(peer)
    try:
        session.commit()
    except IntegrityError:  # added concurrently between our check and our insert
        session.rollback()
        raise Conflict(f"{url} is already a peer") from None
    return peer


def remove_peer(session: Session, url_or_id: str) -> Peer:
    peer = find_peer(session, url_or_id)
    session.delete(peer)
    session.commit()
    return peer


def peer_json(peer: Peer) -> dict:
    added = peer.added if peer.added.tzinfo else peer.added.replace(tzinfo=UTC)
    return {"id": peer.id, "url": peer.url, "kind": peer.kind, "name": peer.name,
            "added": iso(added)}


# --------------------------------------------------------------------------- the API


class PeerRequest(Schema):
    """Body of POST /api/v1/peers."""

    class Meta:
        unknown = RAISE

    url = fields.String(required=True, validate=validate.Length(min=1, max=MAX_URL))
    kind = fields.String(load_default="node", validate=validate.OneOf(KINDS))
    name = fields.String(load_default=None, allow_none=True,
                         validate=validate.Length(min=1, max=200))

    @validates("url")
    def _http_url(self, value: str, **_kwargs) -> None:
        try:
            normalize_url(value)
        except ValueError as exc:
            raise ValidationError(str(exc)) from None

    @post_load
    def _normalize(self, data: dict, **_kwargs) -> dict:
        return {**data, "url": normalize_url(data["url"])}


@bp.get("")
def list_peers() -> Response:
    """Every peer this node knows (public: the entry URL lists them too)."""
    return _json({"items": [peer_json(p) for p in known_peers(db.session())]})


@bp.post("")
@auth.require("admin")
def create_peer() -> Response:
    """Add a peer; 409 when its URL is known already."""
    body = json_body(JSON)
    try:
        data = PeerRequest().load(body)
    except ValidationError as exc:
        raise InvalidInput("the peer is invalid",
                           errors=error_pointers(exc.normalized_messages())) from None
    try:
        peer = add_peer(db.session(), data["url"], data["kind"], data["name"],
                        own_base=current_app.config["BASE_URL"])
    except ValueError as exc:
        raise InvalidInput("the peer is invalid",
                           errors=[{"pointer": "/url", "detail": str(exc)}]) from None
    return _json(peer_json(peer), status=201)


@bp.delete("/<peer_id>")
@auth.require("admin")
def delete_peer(peer_id: str) -> Response:
    """Remove a peer by its id."""
    if not peer_id.isdigit():
        raise NotFound(f"no peer {peer_id!r}")
    remove_peer(db.session(), peer_id)
    return Response(status=204)


def _json(body, status: int = 200) -> Response:
    return Response(orjson.dumps(body), status=status, mimetype=JSON)
