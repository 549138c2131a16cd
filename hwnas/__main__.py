"""``python -m hwnas``."""
import sys

from hwnas.cli import main

sys.exit(main())
