"""Progress bars: tqdm's notebook bar where it can be drawn, else the console bar.

``tqdm.auto`` picks the notebook widget inside a Jupyter kernel; without ipywidgets it
falls back to the console bar but first warns (``TqdmWarning: IProgress not found``,
with the path of the installed tqdm) when it is imported. That warning is about an
optional package, not something a gfdt user must act on, and it leaked into every
executed documentation page. This module makes the same choice without the warning and
imports ``tqdm.auto`` once, silently, so later ``from tqdm.auto import tqdm`` elsewhere
reuses the cached fallback. Import it before anything that imports ``tqdm.auto``.
"""

from __future__ import annotations

import importlib.util
import warnings

from tqdm.std import TqdmWarning

__all__ = ["tqdm"]


def _choose():
    with warnings.catch_warnings():
        if importlib.util.find_spec("ipywidgets") is None:
            warnings.simplefilter("ignore", TqdmWarning)
        from tqdm.auto import tqdm as auto  # cached for every later import
    return auto


tqdm = _choose()
