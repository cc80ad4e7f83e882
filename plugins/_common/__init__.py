"""Helpers the built-in passes share: naming and shape bookkeeping."""
