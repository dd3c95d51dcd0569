"""The partner API: OAuth 2 client credentials, a partner-scoped JSON API, OpenAPI."""
