"""Per-label quality signals for auto-labels (pure functions over arrays)."""
