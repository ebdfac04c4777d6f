"""`python -m evkafka ...` runs the `evkafka` command."""

import sys

from evkafka.cli import main

if __name__ == "__main__":
    sys.exit(main())
