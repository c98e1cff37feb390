"""`python -m chad_memory.cli`: the same as the `chad-memory` command."""

import sys

from chad_memory.cli import main

sys.exit(main())
