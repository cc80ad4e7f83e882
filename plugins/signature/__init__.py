"""The two signature models graphkit was first built for: model classes and stand-in builders."""
