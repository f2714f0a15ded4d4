"""marshmallow schemas for records, derived from the entity table.

Everything that enters a node — API bodies, spreadsheet rows, demo data —
passes `load_record`, which applies the same rules the SHACL shapes state:
http(s)-only URLs, e-mail syntax, BCP 47 tags, coordinate ranges, concepts of
the right scheme, ISO dates, length caps, no unknown fields.
"""

from __future__ import annotations

import re
from datetime import date, datetime
from functools import cache
from typing import Any

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from .errors import InvalidRecord
from .fields import WEEKDAYS, Field, entity
from .mapping import normalize
from .shapes import BCP47_PATTERN, EMAIL_PATTERN
from .terms import notations

__all__ = ["load_record", "record_schema"]

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_MAX_ITEMS = 100


def _no_control(value: str) -> None:
    if _CONTROL.search(value):
        raise ValidationError("Control characters are not allowed.")


class _Text(fields.String):
    """A string without control characters, trimmed, never empty."""

    def __init__(self, max_length: int, **kw):
        super().__init__(validate=[validate.Length(min=1, max=max_length), _no_control], **kw)

    def _deserialize(self, value, attr, data, **kw):
        return super()._deserialize(value, attr, data, **kw).strip()


class _Date(fields.String):
    def _deserialize(self, value, attr, data, **kw):
        text = super()._deserialize(value, attr, data, **kw)
        try:
            if len(text) == 10:  # fromisoformat also takes 20150601; xsd:date does not
                return date.fromisoformat(text).isoformat()
        except ValueError:
            pass
        raise ValidationError("Not a date (YYYY-MM-DD).")


class _DateTime(fields.String):
    """ISO 8601 date-time, written back in xsd:dateTime's form (seconds included)."""

    def _deserialize(self, value, attr, data, **kw):
        text = super()._deserialize(value, attr, data, **kw)
        try:
            parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            raise ValidationError("Not a date-time (YYYY-MM-DDTHH:MM[:SS][+HH:MM|Z]).") from None
        if "T" not in text:
            raise ValidationError("Not a date-time (YYYY-MM-DDTHH:MM[:SS][+HH:MM|Z]).")
        if parsed.tzinfo is None:
            # RFC 3339 (and so OpenAPI's date-time) needs the offset; a bare local time
            # is ambiguous to anyone outside the city.
            raise ValidationError("A date-time needs a time zone offset (Z or +HH:MM).")
        out = parsed.isoformat(timespec="seconds")
        return out.replace("+00:00", "Z")


def _url(max_length: int) -> fields.Field:
    return fields.String(validate=[
        validate.Length(max=max_length),
        validate.URL(relative=False, schemes={"http", "https"}, require_tld=False,
                     error="Not an http or https URL."),
    ])


def _leaf(f: Field) -> fields.Field:
    kind = f.kind
    if kind == "string":
        return _Text(f.max_length)
    if kind == "email":
        return fields.String(validate=[
            validate.Length(max=254),
            validate.Regexp(EMAIL_PATTERN, error="Not an e-mail address."),
        ])
    if kind == "language":
        return fields.String(validate=[validate.Length(max=35),
                                       validate.Regexp(BCP47_PATTERN,
                                                       error="Not a BCP 47 language tag.")])
    if kind in {"iri", "ref"}:
        return _url(f.max_length)
    if kind == "concept":
        known = sorted(notations(f.scheme))
        return fields.String(validate=validate.OneOf(
            known, error=f"Unknown concept {{input!r}} (scheme {f.scheme})."))
    if kind == "date":
        return _Date()
    if kind == "datetime":
        return _DateTime()
    if kind == "time":
        return fields.String(validate=validate.Regexp(r"^([01][0-9]|2[0-3]):[0-5][0-9]$",
                                                      error="Not a time (HH:MM)."))
    if kind == "decimal":
        return fields.Float(allow_nan=False, validate=validate.Range(f.minimum, f.maximum))
    if kind == "boolean":
        return fields.Boolean()
    if kind == "weekday":
        return fields.String(validate=validate.OneOf(WEEKDAYS))
    if kind == "wikidata":
        return fields.String(validate=validate.Regexp(r"^Q[1-9][0-9]{0,11}$",
                                                      error="Not a Wikidata id (Q...)."))
    raise ValueError(f"no schema for field kind {kind!r}")


def _field(f: Field) -> fields.Field:
    if f.kind == "text":
        inner = fields.Dict(
            keys=fields.String(validate=validate.Regexp(BCP47_PATTERN,
                                                        error="Not a BCP 47 language tag.")),
            values=_Text(f.max_length),
            validate=validate.Length(min=1, max=_MAX_ITEMS,
                                     error="Give the text in at least one language."),
        )
        return inner
    if f.kind == "node":
        nested = fields.Nested(_node_schema(f.node.fragment, f.node.fields))
        if f.many:
            return fields.List(nested, validate=validate.Length(max=_MAX_ITEMS))
        return nested
    leaf = _leaf(f)
    if f.many:
        low, high = f.cardinality or (1 if f.required else 0, _MAX_ITEMS)
        return fields.List(leaf, validate=validate.Length(min=low, max=high))
    return leaf


class _RecordSchema(Schema):
    """Cross-field rules the per-field validators cannot see."""

    atlas_fields: tuple[Field, ...] = ()

    class Meta:
        unknown = RAISE

    @validates_schema
    def _cross_field_rules(self, data: dict, **kw) -> None:
        errors: dict[str, list[str]] = {}
        for f in self.atlas_fields:
            if f.not_after and data.get(f.key) and data.get(f.not_after):
                if str(data[f.key]) > str(data[f.not_after]):
                    errors.setdefault(f.not_after, []).append(f"Must not be before {f.key}.")
            if f.kind == "ref" and f.many and f.cardinality:
                if len(set(data.get(f.key) or [])) != len(data.get(f.key) or []):
                    errors.setdefault(f.key, []).append("Values must differ.")
        keys = {f.key for f in self.atlas_fields}
        if "personName" in keys and data.get("personName") and not data.get("consentRecorded"):
            errors.setdefault("personName", []).append(
                "A named person needs consentRecorded: true.")
        if errors:
            raise ValidationError(errors)


def _schema_class(name: str, atlas_fields: tuple[Field, ...], partial_required: bool) -> type:
    attrs: dict[str, Any] = {"atlas_fields": atlas_fields}
    for f in atlas_fields:
        field = _field(f)
        field.required = f.required and partial_required
        if f.read_only:
            field.dump_only = True
        attrs[f.key] = field
    return type(name, (_RecordSchema,), attrs)


@cache
def _node_schema(fragment: str, node_fields: tuple[Field, ...]) -> type:
    return _schema_class(f"{fragment.capitalize()}Schema", node_fields, True)


@cache
def record_schema(kind: str) -> Schema:
    """The schema of one entity kind (``id`` and read-only fields are not accepted)."""
    spec = entity(kind)
    cls = _schema_class(f"{spec.kind.title().replace('-', '')}Schema", spec.fields, True)
    return cls()


def load_record(kind: str, data: Any, partial: bool = False) -> dict:
    """Validate client data into a canonical record (without ``id``).

    Raises `InvalidRecord` with marshmallow's error dict (field -> messages).
    ``partial`` skips required-field checks (for PATCH, before merging).
    """
    if not isinstance(data, dict):
        raise InvalidRecord({"_schema": ["A JSON object is required."]})
    try:
        loaded = record_schema(kind).load(data, partial=partial)
    except ValidationError as exc:
        raise InvalidRecord(exc.normalized_messages()) from None
    return normalize(kind, loaded)
