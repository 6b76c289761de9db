"""Embedded backends: a plain git repo with GTO tags and DVC files is a complete workspace."""
