"""The HTTP API (v1): dependencies, error mapping and one router per resource."""
