"""A partner's branding, set by its own admins: name, logo, colours, base theme, support contact."""
