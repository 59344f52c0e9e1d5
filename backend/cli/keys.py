"""`human3r keys -o DIR [--name NAME]`: make a CurveZMQ key pair for binding beyond loopback."""
from __future__ import annotations

import argparse
import sys

from backend.cli.common import EXIT_FAILED, EXIT_OK


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("-o", "--output", required=True, metavar="DIR", help="directory for the key files")
    parser.add_argument("--name", default="server",
                        help="file name stem: NAME.key (public) and NAME.key_secret (default: server; "
                             "use e.g. --name blender for a client's pair)")


def run(args: argparse.Namespace) -> int:
    from backend.server.security import write_keypair

    try:
        public_path, secret_path = write_keypair(args.output, args.name)
    except FileExistsError as exc:
        print(f"error: {exc.filename} already exists; choose another --name or directory", file=sys.stderr)
        return EXIT_FAILED
    public = public_path.read_text().split('public-key = "', 1)[1][:40]
    print(f"public key  {public_path}  ({public})")
    print(f"secret key  {secret_path}  (keep it private; mode 0600)")
    print("server: human3r serve --bind tcp://0.0.0.0:5555 --curve-secret SERVER.key_secret "
          "--allow-client-key CLIENT.key")
    print("client: give it the server's public key and its own key pair")
    return EXIT_OK
