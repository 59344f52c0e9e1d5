"""`python -m backend` is the same as the `human3r` command."""
import sys

from backend.cli import main

sys.exit(main())
