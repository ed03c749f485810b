"""JSON over HTTP and the search page, beside the gRPC gateway.

One contract, two transports (DESIGN "Round 2"): request and response bodies
are the imgsearch.v1 messages in protobuf's standard JSON mapping, and the
handlers call the same GatewayServicer as gRPC, so validation, tenancy and
error messages cannot differ between the two.
"""
