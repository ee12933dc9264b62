"""The ONNX backend node tests read out of the onnx 1.22.0 wheel."""
from __future__ import annotations

import numpy as np
import pytest

from edgepack.testing import CorpusError
from edgepack.testing.node_tests import list_node_tests, node_test_dir


@pytest.fixture(scope="module")
def by_name():
    return {t.name: t for t in list_node_tests()}


def test_all_node_tests_are_listed(by_name):
    assert node_test_dir().is_dir()
    assert len(by_name) == 1765
    assert all(t.model.is_file() and t.data_sets >= 1 for t in by_name.values())


def test_abs_data_round_trip(by_name):
    test = by_name["test_abs"]
    assert test.op_types == {"Abs"} and test.skip_reason is None
    inputs, expected = test.load_data()
    assert list(inputs) == ["x"] and list(expected) == ["y"]
    assert inputs["x"].shape == expected["y"].shape == (3, 4, 5)
    assert inputs["x"].dtype == np.float32
    np.testing.assert_array_equal(np.abs(inputs["x"]), expected["y"])


def test_two_input_op(by_name):
    inputs, expected = by_name["test_add_bcast"].load_data()
    assert inputs["x"].shape == (3, 4, 5) and inputs["y"].shape == (5,)
    np.testing.assert_allclose(inputs["x"] + inputs["y"], expected["sum"], rtol=1e-6)


def test_filter_by_op_types():
    tests = list_node_tests({"Abs", "Add"})
    names = {t.name for t in tests}
    assert {"test_abs", "test_add", "test_add_bcast"} <= names
    assert all(t.op_types <= {"Abs", "Add"} for t in tests)
    assert "test_sub" not in names


def test_subgraph_ops_are_counted(by_name):
    assert {"Loop", "Add", "Slice"} <= by_name["test_loop11"].op_types


def test_sequences_and_optionals_are_flagged(by_name):
    flagged = by_name["test_identity_opt"]
    assert "optional_type" in flagged.skip_reason
    assert "sequence_type" in by_name["test_sequence_insert_at_back"].skip_reason
    with pytest.raises(CorpusError):
        flagged.load_data()


def test_missing_data_set_is_an_error(by_name):
    with pytest.raises(CorpusError, match="no data set 3"):
        by_name["test_abs"].load_data(3)


def _fill_and_list(cache: str, rounds: int) -> list[int]:
    """In a child process: fill the cache (or wait for whoever fills it) and count the node tests, over and
    over, as a pytest-xdist worker collecting the conformance tests does."""
    from edgepack.testing import node_tests
    out = []
    for _ in range(rounds):
        node_tests._all_tests.cache_clear()
        out.append(len(node_tests.list_node_tests(cache_dir=cache)))
    return out


def test_workers_filling_a_cold_cache_at_once_all_see_every_test(tmp_path):
    """Four processes at once on an empty cache (the wheel already there: no network). Before the lock
    (``wheels.locked``), a late process's ``install_tree`` moved the finished folder away while another
    listed it; one xdist worker collected 8 tests where the other collected 2,324, which stops the run."""
    import multiprocessing as mp
    import shutil

    from edgepack.testing import wheels
    from edgepack.testing.node_tests import SOURCE

    whl = wheels.wheel(SOURCE)                       # the shared cache's copy (fetched by the tests above)
    (tmp_path / "wheels").mkdir()
    shutil.copy(whl, tmp_path / "wheels" / whl.name)
    with mp.get_context("spawn").Pool(4) as pool:
        counts = pool.starmap(_fill_and_list, [(str(tmp_path), 3)] * 4)
    assert counts == [[1765] * 3] * 4
    assert [p.name for p in (tmp_path / "onnx-node-tests").iterdir()] == ["onnx-1.22.0"]    # nothing else
    assert [p.name for p in (tmp_path / ".locks").iterdir()] == ["onnx-node-tests-onnx-1.22.0.lock"]
