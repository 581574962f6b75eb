"""Pieces every Stoplight capability shares (run records, versions)."""
