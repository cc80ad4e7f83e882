"""The built-in passes, one module each."""
