from imgsearch.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CaptionOptions(_message.Message):
    __slots__ = ("max_new_tokens", "num_beams", "prefix")
    MAX_NEW_TOKENS_FIELD_NUMBER: _ClassVar[int]
    NUM_BEAMS_FIELD_NUMBER: _ClassVar[int]
    PREFIX_FIELD_NUMBER: _ClassVar[int]
    max_new_tokens: int
    num_beams: int
    prefix: str
    def __init__(self, max_new_tokens: _Optional[int] = ..., num_beams: _Optional[int] = ..., prefix: _Optional[str] = ...) -> None: ...

class CaptionRequest(_message.Message):
    __slots__ = ("images", "options", "partial_results")
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_RESULTS_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedScalarFieldContainer[bytes]
    options: CaptionOptions
    partial_results: bool
    def __init__(self, images: _Optional[_Iterable[bytes]] = ..., options: _Optional[_Union[CaptionOptions, _Mapping]] = ..., partial_results: _Optional[bool] = ...) -> None: ...

class CaptionResponse(_message.Message):
    __slots__ = ("captions", "errors", "model")
    CAPTIONS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    captions: _containers.RepeatedScalarFieldContainer[str]
    errors: _containers.RepeatedCompositeFieldContainer[_common_pb2.ImageError]
    model: str
    def __init__(self, captions: _Optional[_Iterable[str]] = ..., errors: _Optional[_Iterable[_Union[_common_pb2.ImageError, _Mapping]]] = ..., model: _Optional[str] = ...) -> None: ...

class ScoreRequest(_message.Message):
    __slots__ = ("text", "images", "partial_results")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_RESULTS_FIELD_NUMBER: _ClassVar[int]
    text: str
    images: _containers.RepeatedScalarFieldContainer[bytes]
    partial_results: bool
    def __init__(self, text: _Optional[str] = ..., images: _Optional[_Iterable[bytes]] = ..., partial_results: _Optional[bool] = ...) -> None: ...

class ScoreResponse(_message.Message):
    __slots__ = ("scores", "errors", "model")
    SCORES_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    scores: _containers.RepeatedScalarFieldContainer[float]
    errors: _containers.RepeatedCompositeFieldContainer[_common_pb2.ImageError]
    model: str
    def __init__(self, scores: _Optional[_Iterable[float]] = ..., errors: _Optional[_Iterable[_Union[_common_pb2.ImageError, _Mapping]]] = ..., model: _Optional[str] = ...) -> None: ...

class CaptionerInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CaptionerInfo(_message.Message):
    __slots__ = ("model", "device", "precision", "max_batch_size", "max_items_per_request", "max_image_pixels", "max_request_bytes", "max_new_tokens_limit", "max_beams", "items_served", "model_batches", "score_model", "max_score_text_chars", "pairs_scored")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_ITEMS_PER_REQUEST_FIELD_NUMBER: _ClassVar[int]
    MAX_IMAGE_PIXELS_FIELD_NUMBER: _ClassVar[int]
    MAX_REQUEST_BYTES_FIELD_NUMBER: _ClassVar[int]
    MAX_NEW_TOKENS_LIMIT_FIELD_NUMBER: _ClassVar[int]
    MAX_BEAMS_FIELD_NUMBER: _ClassVar[int]
    ITEMS_SERVED_FIELD_NUMBER: _ClassVar[int]
    MODEL_BATCHES_FIELD_NUMBER: _ClassVar[int]
    SCORE_MODEL_FIELD_NUMBER: _ClassVar[int]
    MAX_SCORE_TEXT_CHARS_FIELD_NUMBER: _ClassVar[int]
    PAIRS_SCORED_FIELD_NUMBER: _ClassVar[int]
    model: str
    device: str
    precision: str
    max_batch_size: int
    max_items_per_request: int
    max_image_pixels: int
    max_request_bytes: int
    max_new_tokens_limit: int
    max_beams: int
    items_served: int
    model_batches: int
    score_model: str
    max_score_text_chars: int
    pairs_scored: int
    def __init__(self, model: _Optional[str] = ..., device: _Optional[str] = ..., precision: _Optional[str] = ..., max_batch_size: _Optional[int] = ..., max_items_per_request: _Optional[int] = ..., max_image_pixels: _Optional[int] = ..., max_request_bytes: _Optional[int] = ..., max_new_tokens_limit: _Optional[int] = ..., max_beams: _Optional[int] = ..., items_served: _Optional[int] = ..., model_batches: _Optional[int] = ..., score_model: _Optional[str] = ..., max_score_text_chars: _Optional[int] = ..., pairs_scored: _Optional[int] = ...) -> None: ...
