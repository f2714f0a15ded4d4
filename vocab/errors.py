"""Errors raised by the vocabulary package (one family, one base class)."""

from __future__ import annotations

__all__ = ["InvalidRecord", "RemoteContextRefused", "VocabError"]


class VocabError(Exception):
    """Base of every error the vocabulary raises."""

    status = 400


class RemoteContextRefused(VocabError):
    """A JSON-LD document names a context we do not bundle; we never fetch one."""

    def __init__(self, url: str):
        super().__init__(f"remote JSON-LD context refused: {url}")
        self.url = url


class InvalidRecord(VocabError):
    """A record breaks the vocabulary's rules; ``errors`` maps field paths to messages."""

    status = 422

    def __init__(self, errors: dict):
        super().__init__(f"invalid record: {errors}")
        self.errors = errors
