"""Calibrated green / yellow / red triage of auto-labels."""
