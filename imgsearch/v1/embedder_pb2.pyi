from imgsearch.v1 import common_pb2 as _common_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EmbedImagesRequest(_message.Message):
    __slots__ = ("images", "partial_results")
    IMAGES_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_RESULTS_FIELD_NUMBER: _ClassVar[int]
    images: _containers.RepeatedScalarFieldContainer[bytes]
    partial_results: bool
    def __init__(self, images: _Optional[_Iterable[bytes]] = ..., partial_results: _Optional[bool] = ...) -> None: ...

class EmbedImagesResponse(_message.Message):
    __slots__ = ("dimension", "vectors", "errors")
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    ERRORS_FIELD_NUMBER: _ClassVar[int]
    dimension: int
    vectors: _containers.RepeatedScalarFieldContainer[bytes]
    errors: _containers.RepeatedCompositeFieldContainer[_common_pb2.ImageError]
    def __init__(self, dimension: _Optional[int] = ..., vectors: _Optional[_Iterable[bytes]] = ..., errors: _Optional[_Iterable[_Union[_common_pb2.ImageError, _Mapping]]] = ...) -> None: ...

class EmbedTextsRequest(_message.Message):
    __slots__ = ("texts",)
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    texts: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, texts: _Optional[_Iterable[str]] = ...) -> None: ...

class EmbedTextsResponse(_message.Message):
    __slots__ = ("dimension", "vectors", "truncated")
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    dimension: int
    vectors: _containers.RepeatedScalarFieldContainer[bytes]
    truncated: _containers.RepeatedScalarFieldContainer[bool]
    def __init__(self, dimension: _Optional[int] = ..., vectors: _Optional[_Iterable[bytes]] = ..., truncated: _Optional[_Iterable[bool]] = ...) -> None: ...

class InfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class EmbedderInfo(_message.Message):
    __slots__ = ("model", "pretrained", "dimension", "device", "precision", "context_length", "max_batch_size", "max_items_per_request", "max_image_pixels", "max_request_bytes", "items_served", "model_batches", "image_size", "runtime", "image_decode", "images_device_decoded", "images_cpu_decoded")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PRETRAINED_FIELD_NUMBER: _ClassVar[int]
    DIMENSION_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    PRECISION_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_LENGTH_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_ITEMS_PER_REQUEST_FIELD_NUMBER: _ClassVar[int]
    MAX_IMAGE_PIXELS_FIELD_NUMBER: _ClassVar[int]
    MAX_REQUEST_BYTES_FIELD_NUMBER: _ClassVar[int]
    ITEMS_SERVED_FIELD_NUMBER: _ClassVar[int]
    MODEL_BATCHES_FIELD_NUMBER: _ClassVar[int]
    IMAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    RUNTIME_FIELD_NUMBER: _ClassVar[int]
    IMAGE_DECODE_FIELD_NUMBER: _ClassVar[int]
    IMAGES_DEVICE_DECODED_FIELD_NUMBER: _ClassVar[int]
    IMAGES_CPU_DECODED_FIELD_NUMBER: _ClassVar[int]
    model: str
    pretrained: str
    dimension: int
    device: str
    precision: str
    context_length: int
    max_batch_size: int
    max_items_per_request: int
    max_image_pixels: int
    max_request_bytes: int
    items_served: int
    model_batches: int
    image_size: int
    runtime: str
    image_decode: str
    images_device_decoded: int
    images_cpu_decoded: int
    def __init__(self, model: _Optional[str] = ..., pretrained: _Optional[str] = ..., dimension: _Optional[int] = ..., device: _Optional[str] = ..., precision: _Optional[str] = ..., context_length: _Optional[int] = ..., max_batch_size: _Optional[int] = ..., max_items_per_request: _Optional[int] = ..., max_image_pixels: _Optional[int] = ..., max_request_bytes: _Optional[int] = ..., items_served: _Optional[int] = ..., model_batches: _Optional[int] = ..., image_size: _Optional[int] = ..., runtime: _Optional[str] = ..., image_decode: _Optional[str] = ..., images_device_decoded: _Optional[int] = ..., images_cpu_decoded: _Optional[int] = ...) -> None: ...
