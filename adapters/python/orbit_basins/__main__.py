# SPDX-License-Identifier: Apache-2.0
"""python -m orbit_basins: the orbit-basins CLI."""
import sys

from .cli import main

sys.exit(main())
