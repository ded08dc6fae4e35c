"""One module per external system, each wrapping that system's official SDK."""
