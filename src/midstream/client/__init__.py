"""The client layer: one request model, each provider's request builder, and the streaming client."""
