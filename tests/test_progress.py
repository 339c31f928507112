"""Progress bars in a Jupyter kernel without ipywidgets: no TqdmWarning (issue 14)."""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types
import warnings

import pytest


@pytest.fixture
def fake_kernel(monkeypatch):
    """What tqdm.autonotebook sees inside a Jupyter kernel, with fresh tqdm imports."""
    if importlib.util.find_spec("ipywidgets") is not None:
        pytest.skip("ipywidgets is installed: tqdm.auto draws widgets and does not warn")

    class ZMQInteractiveShell:
        pass

    ipython = types.ModuleType("IPython")
    ipython.get_ipython = lambda: ZMQInteractiveShell()
    monkeypatch.setitem(sys.modules, "ipykernel.zmqshell", types.ModuleType("zmqshell"))
    monkeypatch.setitem(sys.modules, "IPython", ipython)
    for name in ("tqdm.auto", "tqdm.autonotebook", "gfdt._progress"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    yield
    for name in ("tqdm.auto", "tqdm.autonotebook", "gfdt._progress"):
        sys.modules.pop(name, None)


def test_tqdm_auto_warns_in_a_kernel_without_ipywidgets(fake_kernel):
    """The cause: importing tqdm.auto in a kernel without ipywidgets warns."""
    with pytest.warns(Warning, match="IProgress not found"):
        importlib.import_module("tqdm.auto")


def test_gfdt_progress_is_silent_and_later_imports_too(fake_kernel):
    from tqdm.std import tqdm as console

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        progress = importlib.import_module("gfdt._progress")
        from tqdm.auto import tqdm as auto  # what other modules import, now cached
    assert auto is progress.tqdm
    assert issubclass(auto, console)  # the console bar, not the notebook widget
