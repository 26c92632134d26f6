"""HTTP plumbing every service shares: factory, errors, auth, JSON bodies, pagination,
idempotency, health and OpenAPI."""
