import gc
import warnings

import pytest


@pytest.fixture(scope="session", autouse=True)
def _freeze_heap():
    """coremltools.convert ends with gc.collect(), which walks every object the test session holds
    (~0.5 s a conversion); freezing what exists before the tests keeps it to the conversion's own."""
    import coremltools  # noqa: F401  (its import is most of the heap)
    gc.collect()
    gc.freeze()
    yield
    gc.unfreeze()


@pytest.fixture(autouse=True)
def _quiet_coremltools():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


@pytest.fixture(scope="module")
def coreml_in_table():
    """The target as one table line (added at run time until the table names it)."""
    from edgepack import targets as table
    added = "coreml" not in table.TABLE
    if added:
        table.register("coreml", "edgepack.targets.coreml.target:TARGET")
    yield
    if added:
        table.unregister("coreml")
