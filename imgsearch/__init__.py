"""Shared pieces of imgsearch: generated API stubs (`imgsearch.v1`), safe image
decoding, vector encoding, errors and the gRPC serving toolkit every service
uses."""
