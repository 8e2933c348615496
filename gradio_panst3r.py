"""Alias of `panst3r demo` for users of the official README: `python gradio_panst3r.py --weights W ...`."""

import sys

from flows.cli.main import main

if __name__ == "__main__":
    sys.exit(main(["demo", *sys.argv[1:]]))
