import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from imgsearch.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class IngestStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    INGEST_STATUS_UNSPECIFIED: _ClassVar[IngestStatus]
    INGEST_STATUS_ADDED: _ClassVar[IngestStatus]
    INGEST_STATUS_ALREADY_PRESENT: _ClassVar[IngestStatus]
    INGEST_STATUS_DUPLICATE: _ClassVar[IngestStatus]
    INGEST_STATUS_FAILED: _ClassVar[IngestStatus]
    INGEST_STATUS_SIMILAR_FRAME: _ClassVar[IngestStatus]

class SearchMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEARCH_MODE_UNSPECIFIED: _ClassVar[SearchMode]
    SEARCH_MODE_VECTOR: _ClassVar[SearchMode]
    SEARCH_MODE_CAPTION: _ClassVar[SearchMode]
    SEARCH_MODE_HYBRID: _ClassVar[SearchMode]

class SearchOrder(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SEARCH_ORDER_UNSPECIFIED: _ClassVar[SearchOrder]
    SEARCH_ORDER_RELEVANCE: _ClassVar[SearchOrder]
    SEARCH_ORDER_TIME_ASC: _ClassVar[SearchOrder]
    SEARCH_ORDER_TIME_DESC: _ClassVar[SearchOrder]
INGEST_STATUS_UNSPECIFIED: IngestStatus
INGEST_STATUS_ADDED: IngestStatus
INGEST_STATUS_ALREADY_PRESENT: IngestStatus
INGEST_STATUS_DUPLICATE: IngestStatus
INGEST_STATUS_FAILED: IngestStatus
INGEST_STATUS_SIMILAR_FRAME: IngestStatus
SEARCH_MODE_UNSPECIFIED: SearchMode
SEARCH_MODE_VECTOR: SearchMode
SEARCH_MODE_CAPTION: SearchMode
SEARCH_MODE_HYBRID: SearchMode
SEARCH_ORDER_UNSPECIFIED: SearchOrder
SEARCH_ORDER_RELEVANCE: SearchOrder
SEARCH_ORDER_TIME_ASC: SearchOrder
SEARCH_ORDER_TIME_DESC: SearchOrder

class IngestOptions(_message.Message):
    __slots__ = ("with_captions", "near_duplicate_threshold", "frame_change_threshold")
    WITH_CAPTIONS_FIELD_NUMBER: _ClassVar[int]
    NEAR_DUPLICATE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    FRAME_CHANGE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    with_captions: bool
    near_duplicate_threshold: float
    frame_change_threshold: float
    def __init__(self, with_captions: _Optional[bool] = ..., near_duplicate_threshold: _Optional[float] = ..., frame_change_threshold: _Optional[float] = ...) -> None: ...

class FrameInfo(_message.Message):
    __slots__ = ("video_sha256", "offset_s")
    VIDEO_SHA256_FIELD_NUMBER: _ClassVar[int]
    OFFSET_S_FIELD_NUMBER: _ClassVar[int]
    video_sha256: str
    offset_s: float
    def __init__(self, video_sha256: _Optional[str] = ..., offset_s: _Optional[float] = ...) -> None: ...

class IngestRequest(_message.Message):
    __slots__ = ("data", "path", "uri", "metadata", "options", "frame", "file_mtime")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _common_pb2.Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_common_pb2.Value, _Mapping]] = ...) -> None: ...
    DATA_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    URI_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    FRAME_FIELD_NUMBER: _ClassVar[int]
    FILE_MTIME_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    path: str
    uri: str
    metadata: _containers.MessageMap[str, _common_pb2.Value]
    options: IngestOptions
    frame: FrameInfo
    file_mtime: _timestamp_pb2.Timestamp
    def __init__(self, data: _Optional[bytes] = ..., path: _Optional[str] = ..., uri: _Optional[str] = ..., metadata: _Optional[_Mapping[str, _common_pb2.Value]] = ..., options: _Optional[_Union[IngestOptions, _Mapping]] = ..., frame: _Optional[_Union[FrameInfo, _Mapping]] = ..., file_mtime: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class IngestResult(_message.Message):
    __slots__ = ("index", "id", "status", "duplicate_of", "reason", "error_code", "uri", "caption_pending")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    DUPLICATE_OF_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    ERROR_CODE_FIELD_NUMBER: _ClassVar[int]
    URI_FIELD_NUMBER: _ClassVar[int]
    CAPTION_PENDING_FIELD_NUMBER: _ClassVar[int]
    index: int
    id: str
    status: IngestStatus
    duplicate_of: str
    reason: str
    error_code: str
    uri: str
    caption_pending: bool
    def __init__(self, index: _Optional[int] = ..., id: _Optional[str] = ..., status: _Optional[_Union[IngestStatus, str]] = ..., duplicate_of: _Optional[str] = ..., reason: _Optional[str] = ..., error_code: _Optional[str] = ..., uri: _Optional[str] = ..., caption_pending: _Optional[bool] = ...) -> None: ...

class Filter(_message.Message):
    __slots__ = ("must", "should", "must_not")
    MUST_FIELD_NUMBER: _ClassVar[int]
    SHOULD_FIELD_NUMBER: _ClassVar[int]
    MUST_NOT_FIELD_NUMBER: _ClassVar[int]
    must: _containers.RepeatedCompositeFieldContainer[Condition]
    should: _containers.RepeatedCompositeFieldContainer[Condition]
    must_not: _containers.RepeatedCompositeFieldContainer[Condition]
    def __init__(self, must: _Optional[_Iterable[_Union[Condition, _Mapping]]] = ..., should: _Optional[_Iterable[_Union[Condition, _Mapping]]] = ..., must_not: _Optional[_Iterable[_Union[Condition, _Mapping]]] = ...) -> None: ...

class Condition(_message.Message):
    __slots__ = ("match", "match_any", "range", "datetime_range", "geo_radius", "text", "nested")
    MATCH_FIELD_NUMBER: _ClassVar[int]
    MATCH_ANY_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    DATETIME_RANGE_FIELD_NUMBER: _ClassVar[int]
    GEO_RADIUS_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    NESTED_FIELD_NUMBER: _ClassVar[int]
    match: Match
    match_any: MatchAny
    range: Range
    datetime_range: DatetimeRange
    geo_radius: GeoRadius
    text: TextMatch
    nested: Filter
    def __init__(self, match: _Optional[_Union[Match, _Mapping]] = ..., match_any: _Optional[_Union[MatchAny, _Mapping]] = ..., range: _Optional[_Union[Range, _Mapping]] = ..., datetime_range: _Optional[_Union[DatetimeRange, _Mapping]] = ..., geo_radius: _Optional[_Union[GeoRadius, _Mapping]] = ..., text: _Optional[_Union[TextMatch, _Mapping]] = ..., nested: _Optional[_Union[Filter, _Mapping]] = ...) -> None: ...

class Match(_message.Message):
    __slots__ = ("key", "keyword", "integer", "boolean")
    KEY_FIELD_NUMBER: _ClassVar[int]
    KEYWORD_FIELD_NUMBER: _ClassVar[int]
    INTEGER_FIELD_NUMBER: _ClassVar[int]
    BOOLEAN_FIELD_NUMBER: _ClassVar[int]
    key: str
    keyword: str
    integer: int
    boolean: bool
    def __init__(self, key: _Optional[str] = ..., keyword: _Optional[str] = ..., integer: _Optional[int] = ..., boolean: _Optional[bool] = ...) -> None: ...

class MatchAny(_message.Message):
    __slots__ = ("key", "keywords", "integers")
    KEY_FIELD_NUMBER: _ClassVar[int]
    KEYWORDS_FIELD_NUMBER: _ClassVar[int]
    INTEGERS_FIELD_NUMBER: _ClassVar[int]
    key: str
    keywords: _containers.RepeatedScalarFieldContainer[str]
    integers: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, key: _Optional[str] = ..., keywords: _Optional[_Iterable[str]] = ..., integers: _Optional[_Iterable[int]] = ...) -> None: ...

class Range(_message.Message):
    __slots__ = ("key", "gt", "gte", "lt", "lte")
    KEY_FIELD_NUMBER: _ClassVar[int]
    GT_FIELD_NUMBER: _ClassVar[int]
    GTE_FIELD_NUMBER: _ClassVar[int]
    LT_FIELD_NUMBER: _ClassVar[int]
    LTE_FIELD_NUMBER: _ClassVar[int]
    key: str
    gt: float
    gte: float
    lt: float
    lte: float
    def __init__(self, key: _Optional[str] = ..., gt: _Optional[float] = ..., gte: _Optional[float] = ..., lt: _Optional[float] = ..., lte: _Optional[float] = ...) -> None: ...

class DatetimeRange(_message.Message):
    __slots__ = ("key", "gt", "gte", "lt", "lte")
    KEY_FIELD_NUMBER: _ClassVar[int]
    GT_FIELD_NUMBER: _ClassVar[int]
    GTE_FIELD_NUMBER: _ClassVar[int]
    LT_FIELD_NUMBER: _ClassVar[int]
    LTE_FIELD_NUMBER: _ClassVar[int]
    key: str
    gt: _timestamp_pb2.Timestamp
    gte: _timestamp_pb2.Timestamp
    lt: _timestamp_pb2.Timestamp
    lte: _timestamp_pb2.Timestamp
    def __init__(self, key: _Optional[str] = ..., gt: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., gte: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., lt: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., lte: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GeoRadius(_message.Message):
    __slots__ = ("key", "center", "radius_m")
    KEY_FIELD_NUMBER: _ClassVar[int]
    CENTER_FIELD_NUMBER: _ClassVar[int]
    RADIUS_M_FIELD_NUMBER: _ClassVar[int]
    key: str
    center: _common_pb2.GeoPoint
    radius_m: float
    def __init__(self, key: _Optional[str] = ..., center: _Optional[_Union[_common_pb2.GeoPoint, _Mapping]] = ..., radius_m: _Optional[float] = ...) -> None: ...

class TextMatch(_message.Message):
    __slots__ = ("key", "text")
    KEY_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    key: str
    text: str
    def __init__(self, key: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("text", "image", "point_id", "k", "offset", "score_threshold", "filter", "mode", "group", "order", "relative_cutoff", "page_token", "time_candidates", "rerank")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    IMAGE_FIELD_NUMBER: _ClassVar[int]
    POINT_ID_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    SCORE_THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    GROUP_FIELD_NUMBER: _ClassVar[int]
    ORDER_FIELD_NUMBER: _ClassVar[int]
    RELATIVE_CUTOFF_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TIME_CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    RERANK_FIELD_NUMBER: _ClassVar[int]
    text: str
    image: bytes
    point_id: str
    k: int
    offset: int
    score_threshold: float
    filter: Filter
    mode: SearchMode
    group: Grouping
    order: SearchOrder
    relative_cutoff: float
    page_token: str
    time_candidates: int
    rerank: RerankOptions
    def __init__(self, text: _Optional[str] = ..., image: _Optional[bytes] = ..., point_id: _Optional[str] = ..., k: _Optional[int] = ..., offset: _Optional[int] = ..., score_threshold: _Optional[float] = ..., filter: _Optional[_Union[Filter, _Mapping]] = ..., mode: _Optional[_Union[SearchMode, str]] = ..., group: _Optional[_Union[Grouping, _Mapping]] = ..., order: _Optional[_Union[SearchOrder, str]] = ..., relative_cutoff: _Optional[float] = ..., page_token: _Optional[str] = ..., time_candidates: _Optional[int] = ..., rerank: _Optional[_Union[RerankOptions, _Mapping]] = ...) -> None: ...

class Grouping(_message.Message):
    __slots__ = ("by", "window_s")
    BY_FIELD_NUMBER: _ClassVar[int]
    WINDOW_S_FIELD_NUMBER: _ClassVar[int]
    by: str
    window_s: float
    def __init__(self, by: _Optional[str] = ..., window_s: _Optional[float] = ...) -> None: ...

class HitGroup(_message.Message):
    __slots__ = ("key", "size", "start", "end", "hit_ids")
    KEY_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    START_FIELD_NUMBER: _ClassVar[int]
    END_FIELD_NUMBER: _ClassVar[int]
    HIT_IDS_FIELD_NUMBER: _ClassVar[int]
    key: str
    size: int
    start: _timestamp_pb2.Timestamp
    end: _timestamp_pb2.Timestamp
    hit_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, key: _Optional[str] = ..., size: _Optional[int] = ..., start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., hit_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class RerankOptions(_message.Message):
    __slots__ = ("enabled", "candidates", "strict")
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    CANDIDATES_FIELD_NUMBER: _ClassVar[int]
    STRICT_FIELD_NUMBER: _ClassVar[int]
    enabled: bool
    candidates: int
    strict: bool
    def __init__(self, enabled: _Optional[bool] = ..., candidates: _Optional[int] = ..., strict: _Optional[bool] = ...) -> None: ...

class Hit(_message.Message):
    __slots__ = ("id", "score", "uri", "caption", "payload", "rerank_score")
    class PayloadEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: _common_pb2.Value
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[_common_pb2.Value, _Mapping]] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    URI_FIELD_NUMBER: _ClassVar[int]
    CAPTION_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    RERANK_SCORE_FIELD_NUMBER: _ClassVar[int]
    id: str
    score: float
    uri: str
    caption: str
    payload: _containers.MessageMap[str, _common_pb2.Value]
    rerank_score: float
    def __init__(self, id: _Optional[str] = ..., score: _Optional[float] = ..., uri: _Optional[str] = ..., caption: _Optional[str] = ..., payload: _Optional[_Mapping[str, _common_pb2.Value]] = ..., rerank_score: _Optional[float] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("hits", "model", "truncated", "groups", "next_page_token", "reranked", "rerank_model", "rerank_note")
    HITS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    RERANKED_FIELD_NUMBER: _ClassVar[int]
    RERANK_MODEL_FIELD_NUMBER: _ClassVar[int]
    RERANK_NOTE_FIELD_NUMBER: _ClassVar[int]
    hits: _containers.RepeatedCompositeFieldContainer[Hit]
    model: str
    truncated: bool
    groups: _containers.RepeatedCompositeFieldContainer[HitGroup]
    next_page_token: str
    reranked: bool
    rerank_model: str
    rerank_note: str
    def __init__(self, hits: _Optional[_Iterable[_Union[Hit, _Mapping]]] = ..., model: _Optional[str] = ..., truncated: _Optional[bool] = ..., groups: _Optional[_Iterable[_Union[HitGroup, _Mapping]]] = ..., next_page_token: _Optional[str] = ..., reranked: _Optional[bool] = ..., rerank_model: _Optional[str] = ..., rerank_note: _Optional[str] = ...) -> None: ...

class GetThumbnailRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class GetThumbnailResponse(_message.Message):
    __slots__ = ("data", "media_type")
    DATA_FIELD_NUMBER: _ClassVar[int]
    MEDIA_TYPE_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    media_type: str
    def __init__(self, data: _Optional[bytes] = ..., media_type: _Optional[str] = ...) -> None: ...

class GetRequest(_message.Message):
    __slots__ = ("ids",)
    IDS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ids: _Optional[_Iterable[str]] = ...) -> None: ...

class GetResponse(_message.Message):
    __slots__ = ("points", "missing")
    POINTS_FIELD_NUMBER: _ClassVar[int]
    MISSING_FIELD_NUMBER: _ClassVar[int]
    points: _containers.RepeatedCompositeFieldContainer[Hit]
    missing: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, points: _Optional[_Iterable[_Union[Hit, _Mapping]]] = ..., missing: _Optional[_Iterable[str]] = ...) -> None: ...

class DeleteRequest(_message.Message):
    __slots__ = ("ids", "filter")
    IDS_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    filter: Filter
    def __init__(self, ids: _Optional[_Iterable[str]] = ..., filter: _Optional[_Union[Filter, _Mapping]] = ...) -> None: ...

class DeleteResponse(_message.Message):
    __slots__ = ("deleted",)
    DELETED_FIELD_NUMBER: _ClassVar[int]
    deleted: int
    def __init__(self, deleted: _Optional[int] = ...) -> None: ...

class StatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class StatsResponse(_message.Message):
    __slots__ = ("count", "model", "pretrained", "dimension", "captioned_count", "caption_pending_count", "collection", "store")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PRETRAINED_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    CAPTIONED_COUNT_FIELD_NUMBER: _ClassVar[int]
    CAPTION_PENDING_COUNT_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    STORE_FIELD_NUMBER: _ClassVar[int]
    count: int
    model: str
    pretrained: str
    dimension: int
    captioned_count: int
    caption_pending_count: int
    collection: str
    store: str
    def __init__(self, count: _Optional[int] = ..., model: _Optional[str] = ..., pretrained: _Optional[str] = ..., dimension: _Optional[int] = ..., captioned_count: _Optional[int] = ..., caption_pending_count: _Optional[int] = ..., collection: _Optional[str] = ..., store: _Optional[str] = ...) -> None: ...
