"""`python -m reconciler run|preview`; see `reconciler.cli`."""

import sys

from reconciler.cli import main

sys.exit(main())
