"""Attacks on distilled data (one file per attack family; nothing is imported here)."""
