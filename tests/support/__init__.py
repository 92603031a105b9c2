"""Builders and clients shared by the tests (never fixtures: those live in conftest files)."""
