"""Single sign-on: each partner's own OpenID Connect provider (DESIGN §9)."""
