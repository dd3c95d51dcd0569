"""Data protection: a user's export and account closure, erasure, retention, offboarding."""
