"""`python -m engine ...` is `engine ...`."""

import sys

from .cli import main

sys.exit(main())
