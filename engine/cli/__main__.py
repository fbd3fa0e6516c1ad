"""`python -m engine.cli ...` (older instructions) is `engine ...` too."""

import sys

from . import main

sys.exit(main())
