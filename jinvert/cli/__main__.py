"""``python -m jinvert.cli ...``: the ``jinvert`` command (:func:`jinvert.cli.main`)."""

import sys

from jinvert.cli import main

sys.exit(main())
