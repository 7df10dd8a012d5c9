"""``python -m ddrepro`` is the ``ddrepro`` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
