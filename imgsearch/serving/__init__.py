"""The gRPC serving toolkit shared by the model services and the gateway:
server bootstrap with health, reflection and graceful drain; the error
interceptor; dynamic batching; Prometheus metrics; logging set-up."""
