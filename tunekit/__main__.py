"""`python -m tunekit`: the `tunekit` command (see `tunekit.cli`)."""

import sys

from tunekit.cli import main

sys.exit(main())
