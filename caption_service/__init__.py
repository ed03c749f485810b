"""BLIP captioner: the in-process model wrapper (`BlipCaptioner`) and the gRPC
service around it (`python -m caption_service`)."""

from caption_service.model import BlipCaptioner, CaptionerModelInfo, CaptionList, CaptionOptions

__all__ = ["BlipCaptioner", "CaptionList", "CaptionOptions", "CaptionerModelInfo"]
