"""The built-in recipes: each ``*.yaml`` file here is usable by name, as in ``graphkit apply NAME``."""
