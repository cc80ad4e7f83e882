"""The recipe language: safe YAML, parameter schemas, validation, and recipes found by name.

Kept free of imports so that importing one module here loads only what it needs.
"""
