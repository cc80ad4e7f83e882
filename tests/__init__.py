"""graphkit test suite; shared builders live in tests/models.py."""
