"""Summaries and reports built from model and results (pure: they return data or text)."""
