"""Make the unit tests' channel test shell (`core_pair`) importable from the property tests."""

import sys
from pathlib import Path

_UNIT = str(Path(__file__).resolve().parents[1] / "unit")
if _UNIT not in sys.path:
    sys.path.insert(0, _UNIT)
