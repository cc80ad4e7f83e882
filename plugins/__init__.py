"""The plugins graphkit ships: core passes and frontends, registered like any third-party plugin."""
