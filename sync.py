"""Thin entry point: ``python sync.py ...`` is the same CLI as ``o2c ...``."""

from connector.cli import main

if __name__ == "__main__":
    main(prog_name="o2c")
