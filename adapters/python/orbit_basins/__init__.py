# SPDX-License-Identifier: Apache-2.0
"""orbit_basins: the inference side of Orbit's basin model.

Map which prompts land in which basin (CREATIVE, SEMANTIC_LOOP, TOKEN_COLLAPSE,
UNKNOWN), compare models by their basin distributions, predict a prompt's basin
from its prefill alone, and turn a basin map into data-mixture weights.
See docs/basins.md. The CLI is `orbit-basins` (or `python -m orbit_basins`).
"""
