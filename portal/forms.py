"""The base of the portal's forms: a failed validation names its fields (never their values)
for the request's log line, so refused input and forged forms (a missing or stale CSRF
token) are on record (`portal/observability.py`)."""

from __future__ import annotations

from typing import Any

from flask import g, has_request_context
from flask_wtf import FlaskForm


class PortalForm(FlaskForm):
    def validate(self, extra_validators: Any = None) -> bool:
        valid = super().validate(extra_validators=extra_validators)
        if not valid and has_request_context():
            fields = g.setdefault("refused_fields", [])
            fields.extend(name for name, errors in self.errors.items() if errors)
        return valid
