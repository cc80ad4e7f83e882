"""The built-in recipes: each ``*.yaml`` file here is usable by name (``graphkit apply NAME``)."""
