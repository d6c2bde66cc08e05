"""``python -m flare`` is the ``flare`` command."""

import sys

from flare.cli import main

sys.exit(main())
