"""Sphinx configuration of the gfdt documentation.

Build with ``sphinx-build -W -b html docs docs/_build/html`` (warnings are errors).
Notebook pages (MyST markdown with a ``kernelspec``) are executed by myst-nb at build
time, so they must stay small.
"""

from __future__ import annotations

import sys
from pathlib import Path

# The package is normally installed (pip install -e ".[docs]"); this keeps a plain
# checkout buildable too.
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import gfdt  # noqa: E402  (version number)

# -- project ---------------------------------------------------------------------
project = "gfdt"
author = "gfdt developers"
copyright = "gfdt developers"
release = gfdt.__version__
version = ".".join(release.split(".")[:2])

# -- extensions ------------------------------------------------------------------
# No intersphinx: it needs the network, and the build must work offline.
extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax 3 copied into _static: math renders offline
    "numpydoc",
    "myst_nb",
]
# the bundled MathJax (sphinx-mathjax-offline copies it to _static/mathjax), no CDN
mathjax_path = "mathjax/tex-chtml.js"

exclude_patterns = [
    "_build",
    "jupyter_execute",
    "**.ipynb_checkpoints",
    "Thumbs.db",
    ".DS_Store",
]
root_doc = "index"
templates_path = ["_templates"]

# -- autodoc / autosummary / numpydoc -------------------------------------------
autosummary_generate = True  # stubs go to api/generated (git-ignored)
autosummary_imported_members = False
autodoc_typehints = "none"  # numpydoc sections already give the types
autoclass_content = "class"
numpydoc_show_class_members = False  # no per-member stub pages (avoids warnings)
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# -- MyST / myst-nb --------------------------------------------------------------
myst_enable_extensions = ["dollarmath", "amsmath", "colon_fence", "deflist"]
myst_heading_anchors = 3
nb_execution_mode = "cache"  # re-run a notebook page only when its code changed
nb_execution_timeout = 300  # seconds per cell
nb_execution_raise_on_error = True  # a failing cell fails the build
nb_execution_show_tb = True
nb_merge_streams = True

# -- HTML ------------------------------------------------------------------------
html_theme = "pydata_sphinx_theme"
html_title = f"gfdt {release}"
html_static_path: list[str] = ["_static"]
html_theme_options = {
    "show_toc_level": 2,
    "navigation_with_keys": False,
    "secondary_sidebar_items": ["page-toc"],
}
html_context = {"default_mode": "light"}
