"""Tools for writing recipes: ``graphkit new``, ``graphkit schema`` and ``apply --dry-run``.

Kept free of imports so that importing one module here loads only what it needs.
"""
