"""The `human3r` command line (`backend.cli:main`, also `python -m backend`).

`main.py` holds the subcommand registry; `common.py` the argument helpers the commands share; one
module per command (`infer`, `serve`, `remote` (the client side of `infer --server`), `keys`,
`convert`, `doctor`, `download`, `refine`, `export`), each with `add_arguments(parser)` and `run(args) -> int`.

`backend.cli.main` as an attribute is the function (the console script `backend.cli:main`); the
registry module is reached with `from backend.cli.main import COMMANDS`.
"""
from backend.cli.main import main

__all__ = ["main"]
