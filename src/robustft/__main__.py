"""``python -m robustft`` is the ``robustft`` command."""

import sys

from robustft.cli import main

sys.exit(main())
