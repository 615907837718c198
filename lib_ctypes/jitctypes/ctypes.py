"""``import jitctypes.ctypes``: the stdlib ``ctypes`` package on jitctypes, side by side with
stock ``ctypes`` (see ``jitctypes.loader.side_by_side``). This module replaces itself with
that package on import."""

import sys

from jitctypes.loader import side_by_side

sys.modules[__name__] = side_by_side()
