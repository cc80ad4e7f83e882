"""``python -m graphkit``."""

import sys

from graphkit._cli import main

sys.exit(main())
