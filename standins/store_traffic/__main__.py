"""``python -m standins.store_traffic``: runs :func:`standins.store_traffic.cli.main`."""

import sys

from standins.store_traffic.cli import main

if __name__ == "__main__":
    sys.exit(main())
