"""`python -m tools.bench` is `python -m tools.bench.server_load`."""

import sys

from tools.bench.server_load import main

sys.exit(main())
