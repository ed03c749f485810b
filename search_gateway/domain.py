"""Plain domain types of the gateway: filters, collection spec, points, errors.

Nothing here imports protobuf or qdrant-client, so handlers, the CLI and every
store engine (qdrant-client and Qdrant Edge) share one vocabulary.
"""

from __future__ import annotations

import enum
import math
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, TypeAlias

import numpy as np

# UUIDv5 namespace of imgsearch point ids. Never change it: every stored id
# derives from it, so re-ingesting the same bytes finds the same point.
POINT_ID_NAMESPACE = uuid.UUID("6b1f3c8e-2a4d-5e7f-9a0b-1c2d3e4f5a6b")

# Named vectors of a collection.
DENSE_VECTOR = "clip"
CAPTION_VECTOR = "caption"


# --- payload fields -------------------------------------------------------


class IndexKind(enum.Enum):
    """Payload index a field gets; each store engine maps it to its own type."""

    KEYWORD = "keyword"
    TENANT_KEYWORD = "tenant_keyword"  # keyword that partitions data per tenant
    INTEGER = "integer"
    FLOAT = "float"
    BOOL = "bool"
    DATETIME = "datetime"
    GEO = "geo"
    TEXT = "text"


# System fields, written by the gateway only.
PATH = "path"
PATHS = "paths"
SHA256 = "sha256"
WIDTH = "width"
HEIGHT = "height"
FORMAT = "format"
CAPTION = "caption"
CAPTION_MODEL = "caption_model"
CAPTION_PENDING = "caption_pending"
CAPTIONED = "captioned"  # true once a caption is stored; lets Stats count cheaply
INGESTED_AT = "ingested_at"
DUPLICATE_OF = "duplicate_of"
# The near-duplicate cluster a point belongs to: its representative's id
# (`duplicate_of`), or the point's own id when it is its own representative.
# On every point, so the engine can group by it; points stored before it
# existed get it once at store open (store/backfill.py).
NEAR_GROUP = "near_group"
# Video frames (issue 13): set by the gateway from the request's frame info.
VIDEO_SHA256 = "video_sha256"
FRAME_OFFSET = "frame_offset_s"
FRAME_END = "frame_end_s"
TIMESTAMP_END = "timestamp_end"

# Well-known user metadata: set by users at ingest, indexed for filters.
TIMESTAMP = "timestamp"
CAMERA_ID = "camera_id"
LOCATION = "location"
TAGS = "tags"
TENANT = "tenant"

# Keys user metadata may not use: the gateway owns them.
RESERVED_FIELDS: frozenset[str] = frozenset(
    {
        PATH,
        PATHS,
        SHA256,
        WIDTH,
        HEIGHT,
        FORMAT,
        CAPTION,
        CAPTION_MODEL,
        CAPTION_PENDING,
        CAPTIONED,
        INGESTED_AT,
        DUPLICATE_OF,
        NEAR_GROUP,
        VIDEO_SHA256,
        FRAME_OFFSET,
        FRAME_END,
        TIMESTAMP_END,
    }
)

# Every field filters use, with its index. Other user keys still filter
# (by a full scan of the candidates), just without an index.
PAYLOAD_INDEXES: dict[str, IndexKind] = {
    PATH: IndexKind.KEYWORD,
    PATHS: IndexKind.KEYWORD,
    SHA256: IndexKind.KEYWORD,
    WIDTH: IndexKind.INTEGER,
    HEIGHT: IndexKind.INTEGER,
    FORMAT: IndexKind.KEYWORD,
    CAPTION: IndexKind.TEXT,
    CAPTION_MODEL: IndexKind.KEYWORD,
    CAPTION_PENDING: IndexKind.BOOL,
    CAPTIONED: IndexKind.BOOL,
    INGESTED_AT: IndexKind.DATETIME,
    DUPLICATE_OF: IndexKind.KEYWORD,
    NEAR_GROUP: IndexKind.KEYWORD,
    VIDEO_SHA256: IndexKind.KEYWORD,
    FRAME_OFFSET: IndexKind.FLOAT,
    FRAME_END: IndexKind.FLOAT,
    TIMESTAMP_END: IndexKind.DATETIME,
    TIMESTAMP: IndexKind.DATETIME,
    CAMERA_ID: IndexKind.KEYWORD,
    LOCATION: IndexKind.GEO,
    TAGS: IndexKind.KEYWORD,
    TENANT: IndexKind.TENANT_KEYWORD,
}


# --- errors ---------------------------------------------------------------


class InvalidFilter(ValueError):
    """A filter that cannot run; the message names the bad condition."""


class InvalidPointId(ValueError):
    """A point id that is not a UUID."""


class PointNotFound(KeyError):
    """An operation on one point that does not exist."""

    def __str__(self) -> str:  # KeyError would show the message quoted
        return str(self.args[0]) if self.args else "point not found"


class StoreUnavailable(RuntimeError):
    """The vector store cannot be reached (or its folder is locked); retryable."""


class ModelMismatch(RuntimeError):
    """The collection was built with another embedding model than the gateway's."""

    def __init__(self, collection: str, stored: CollectionSpec, wanted: CollectionSpec) -> None:
        self.collection = collection
        self.stored = stored
        self.wanted = wanted
        super().__init__(
            f"collection {collection!r} was built with model {stored.describe()}; "
            f"this gateway embeds with {wanted.describe()}; "
            "use another collection or re-index"
        )


# --- ids ------------------------------------------------------------------


def point_id_for(sha256_hex: str) -> str:
    """Point id of an image: UUIDv5 of its content hash, so ingest is idempotent."""
    digest = sha256_hex.strip().lower()
    if not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise ValueError(f"not a sha256 hex digest: {sha256_hex!r}")
    return str(uuid.uuid5(POINT_ID_NAMESPACE, digest))


def tenant_point_id(sha256_hex: str, tenant: str | None) -> str:
    """Point id within a tenant: the same image of two tenants is two points,
    so one tenant's ingest can never reveal or touch another's."""
    if tenant is None:
        return point_id_for(sha256_hex)
    return str(uuid.uuid5(POINT_ID_NAMESPACE, f"{tenant}/{point_id_for(sha256_hex)}"))


def caption_fields(caption: str, model: str) -> dict[str, Any]:
    """Payload fields of a stored caption (it is no longer pending)."""
    return {CAPTION: caption, CAPTION_MODEL: model, CAPTION_PENDING: False, CAPTIONED: True}


def scoped(flt: Filter | None, tenant: str | None) -> Filter | None:
    """`flt` restricted to one tenant's points (unchanged when tenancy is off)."""
    if tenant is None:
        return flt
    own = Match(TENANT, tenant)
    if flt is None or flt.is_empty:
        return Filter(must=(own,))
    return Filter(must=(own, flt))


def normalize_point_id(point_id: str) -> str:
    """Canonical lowercase hyphenated form of a point id, or InvalidPointId."""
    try:
        return str(uuid.UUID(point_id))
    except (ValueError, TypeError, AttributeError):
        raise InvalidPointId(f"malformed point id {point_id!r}: expected a UUID") from None


def rfc3339(value: datetime) -> str:
    """UTC RFC 3339 text ('2024-05-01T12:00:00Z'), as payloads store datetimes."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"datetime {value.isoformat()} has no timezone")
    return value.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


# --- collection and points --------------------------------------------------


@dataclass(frozen=True)
class CollectionSpec:
    """The embedding model a collection's vectors come from; stored with it."""

    model: str
    pretrained: str
    dimension: int

    def __post_init__(self) -> None:
        if not self.model:
            raise ValueError("model name is empty")
        if self.dimension < 1:
            raise ValueError(f"vector dimension must be >= 1, got {self.dimension}")

    def describe(self) -> str:
        """'ViT-B-32/laion2b_s34b_b79k (dim 512)', as error messages show it."""
        return f"{self.model}/{self.pretrained} (dim {self.dimension})"


@dataclass
class StoredPoint:
    """One image as stored: id, payload and (when asked for) its CLIP vector."""

    id: str
    payload: dict[str, Any]
    vector: np.ndarray | None = None


@dataclass(frozen=True)
class ScoredPoint:
    """A search hit; the score's meaning depends on the mode (cosine, BM25, RRF)."""

    id: str
    score: float
    payload: dict[str, Any]


# --- filters --------------------------------------------------------------

# What a payload key is, written once: a metadata key at ingest is one level
# (letters, digits and _, at most 64), a filter's field path is levels joined
# by dots. (filter_syntax's lexer only finds where a key token ends; whether
# it is a key is decided here.)
_KEY_LEVEL = r"[A-Za-z_][A-Za-z0-9_]{0,63}"
_KEY_RES = {
    False: re.compile(_KEY_LEVEL),
    True: re.compile(rf"{_KEY_LEVEL}(\.{_KEY_LEVEL})*"),
}
_WORD_RE = re.compile(r"[^\W_]+")

# Deeper nesting is never needed by people and only costs the server.
MAX_FILTER_DEPTH = 8


def payload_key_problem(key: str, *, nested: bool = True) -> str | None:
    """Why `key` is not a payload key (None when it is); `nested` allows a dotted path."""
    if not key:
        return "empty key"
    if not _KEY_RES[nested].fullmatch(key):
        return f"invalid key {key!r}"
    return None


def _finite(name: str, value: float | None) -> str | None:
    if value is not None and (isinstance(value, bool) or not math.isfinite(value)):
        return f"{name} must be a finite number, got {value!r}"
    return None


def _bounds_problem(gt: Any, gte: Any, lt: Any, lte: Any) -> str | None:
    if gt is None and gte is None and lt is None and lte is None:
        return "no bound given"
    lower = [b for b in (gt, gte) if b is not None]
    upper = [b for b in (lt, lte) if b is not None]
    if lower and upper and max(lower) > min(upper):
        return "lower bound is above upper bound, nothing can match"
    return None


@dataclass(frozen=True)
class Match:
    """Exact match on a keyword, integer or boolean field (lists: contains)."""

    key: str
    value: str | int | bool

    def describe(self) -> str:
        return f"match on {self.key!r}"

    def problem(self) -> str | None:
        if not isinstance(self.value, (str, int)):
            return f"value must be a string, integer or boolean, got {type(self.value).__name__}"
        return None


@dataclass(frozen=True)
class MatchAny:
    """The field equals any of the values (list fields: contains any)."""

    key: str
    values: tuple[str, ...] | tuple[int, ...]

    def describe(self) -> str:
        return f"match-any on {self.key!r}"

    def problem(self) -> str | None:
        if not self.values:
            return "no values given"
        if all(isinstance(v, str) for v in self.values):
            return None
        if all(isinstance(v, int) and not isinstance(v, bool) for v in self.values):
            return None
        return "values must be all strings or all integers"


@dataclass(frozen=True)
class Range:
    """Numeric range; None bounds are open."""

    key: str
    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None

    def describe(self) -> str:
        return f"range on {self.key!r}"

    def problem(self) -> str | None:
        for name in ("gt", "gte", "lt", "lte"):
            if msg := _finite(name, getattr(self, name)):
                return msg
        return _bounds_problem(self.gt, self.gte, self.lt, self.lte)


@dataclass(frozen=True)
class DatetimeRange:
    """Range over an RFC 3339 datetime field; bounds must be timezone-aware."""

    key: str
    gt: datetime | None = None
    gte: datetime | None = None
    lt: datetime | None = None
    lte: datetime | None = None

    def describe(self) -> str:
        return f"datetime range on {self.key!r}"

    def problem(self) -> str | None:
        for name in ("gt", "gte", "lt", "lte"):
            bound = getattr(self, name)
            if bound is None:
                continue
            if not isinstance(bound, datetime):
                return f"{name} must be a datetime, got {type(bound).__name__}"
            if bound.tzinfo is None or bound.utcoffset() is None:
                return f"{name} has no timezone (naive datetimes are ambiguous)"
        return _bounds_problem(self.gt, self.gte, self.lt, self.lte)


@dataclass(frozen=True)
class GeoRadius:
    """Points whose geo field lies within radius_m metres of (lat, lon)."""

    key: str
    lat: float
    lon: float
    radius_m: float

    def describe(self) -> str:
        return f"geo radius on {self.key!r}"

    def problem(self) -> str | None:
        for name in ("lat", "lon", "radius_m"):
            if msg := _finite(name, getattr(self, name)):
                return msg
        if not -90.0 <= self.lat <= 90.0:
            return f"latitude {self.lat} outside [-90, 90]"
        if not -180.0 <= self.lon <= 180.0:
            return f"longitude {self.lon} outside [-180, 180]"
        if self.radius_m <= 0:
            return f"radius must be > 0 metres, got {self.radius_m}"
        return None


@dataclass(frozen=True)
class TextMatch:
    """Full-text match: every word of text occurs in the field."""

    key: str
    text: str

    def describe(self) -> str:
        return f"text match on {self.key!r}"

    def problem(self) -> str | None:
        if not _WORD_RE.search(self.text):
            return "text has no words"
        return None


# A leaf condition or a nested Filter.
Condition: TypeAlias = "Match | MatchAny | Range | DatetimeRange | GeoRadius | TextMatch | Filter"


@dataclass(frozen=True)
class Filter:
    """All of must, at least one of should (when non-empty), none of must_not."""

    must: tuple[Condition, ...] = field(default_factory=tuple)
    should: tuple[Condition, ...] = field(default_factory=tuple)
    must_not: tuple[Condition, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        # Accept lists for convenience; store tuples so filters are hashable.
        for name in ("must", "should", "must_not"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    @property
    def is_empty(self) -> bool:
        return not (self.must or self.should or self.must_not)

    def describe(self) -> str:
        return "nested filter"

    def validate(self) -> Filter:
        """Returns self, or raises InvalidFilter naming the first bad condition."""
        self._validate("", 1)
        return self

    def _validate(self, prefix: str, depth: int) -> None:
        if depth > MAX_FILTER_DEPTH:
            raise InvalidFilter(f"{prefix or 'filter'}: nested deeper than {MAX_FILTER_DEPTH}")
        for clause in ("must", "should", "must_not"):
            for i, cond in enumerate(getattr(self, clause)):
                where = f"{prefix}{clause}[{i}]"
                if isinstance(cond, Filter):
                    cond._validate(where + ".", depth + 1)
                    continue
                if not isinstance(cond, _LEAF_TYPES):
                    raise InvalidFilter(f"{where}: not a condition: {type(cond).__name__}")
                if problem := condition_problem(cond):
                    raise InvalidFilter(f"{where} ({cond.describe()}): {problem}")


_LEAF_TYPES = (Match, MatchAny, Range, DatetimeRange, GeoRadius, TextMatch)


def condition_problem(
    cond: Match | MatchAny | Range | DatetimeRange | GeoRadius | TextMatch,
) -> str | None:
    """What is wrong with one leaf condition (its key included), or None."""
    return payload_key_problem(cond.key) or cond.problem()
