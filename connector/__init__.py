"""o2c-connector: the engine. It knows no vendor; adapters plug in through small protocols."""

__version__ = "0.1.0"
