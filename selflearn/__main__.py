"""`python -m selflearn ...` is the `selflearn` command."""
import os
import sys

from selflearn.cli import main

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.exit(main())
