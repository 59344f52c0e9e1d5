"""`python -m backend.server ...` is `human3r serve ...` (same flags)."""
import argparse
import sys

from backend.server import serve_cli

parser = argparse.ArgumentParser(prog="python -m backend.server", description="start the Human3R ZeroMQ server")
serve_cli.add_arguments(parser)
sys.exit(serve_cli.run(parser.parse_args()))
