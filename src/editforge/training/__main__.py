"""``python -m editforge.training``: see ``editforge.training.launcher.main``."""

import sys

from editforge.training.launcher import main

sys.exit(main())
