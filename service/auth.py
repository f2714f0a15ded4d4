"""Bearer tokens for the write API: created with the CLI, stored only as hashes.

A token reads ``atl_<id>_<secret>``. The database keeps the SHA-256 of the
whole token (the secret is 256 random bits, so a fast hash is enough and a
leaked database reveals no usable token). Roles: ``admin`` may do everything,
``editor`` may change entities but not manage tokens.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import g, request
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from . import db
from .errors import Forbidden, NotFound, Unauthorized
from .models import Token
from .store import now

__all__ = ["ROLES", "create_token", "current_token", "list_tokens", "require", "revoke_token"]

ROLES = ("admin", "editor")
_RANK = {"editor": 1, "admin": 2}


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(session: Session, name: str, role: str) -> tuple[Token, str]:
    """A new token; the plain value is returned once and never stored."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    token_id = secrets.token_hex(4)
    plain = f"atl_{token_id}_{secrets.token_urlsafe(32)}"
    row = Token(id=token_id, name=name, role=role, secret_hash=_hash(plain), created=now())
    session.add(row)
    session.commit()
    return row, plain


def list_tokens(session: Session) -> list[Token]:
    return list(session.scalars(select(Token).order_by(Token.created, Token.id)))


def revoke_token(session: Session, token_id: str) -> Token:
    row = session.get(Token, token_id)
    if row is None:
        raise NotFound(f"no token {token_id!r}")
    if row.revoked is None:
        row.revoked = now()
        session.commit()
    return row


def _authenticate() -> Token:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        raise Unauthorized("send an API token: Authorization: Bearer <token>")
    session = db.session()
    row = session.scalar(select(Token).where(Token.secret_hash == _hash(value.strip())))
    if row is None or row.revoked is not None:
        raise Unauthorized("the token is unknown or revoked")
    session.execute(update(Token).where(Token.id == row.id).values(last_used=now()))
    session.commit()
    return row


def require(role: str) -> Callable:
    """View decorator: a valid token with at least ``role`` (401 without, 403 below)."""

    def decorate(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any):
            token = _authenticate()
            if _RANK[token.role] < _RANK[role]:
                raise Forbidden(f"this needs the {role} role; the token has {token.role}")
            g.atlas_token = token
            return view(*args, **kwargs)

        return wrapped

    return decorate


def current_token() -> Token | None:
    return g.get("atlas_token")
