"""The rdm-mat reader: struct arrays with .name and .RDM, and its errors."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.io
from hypothesis import given, settings
from hypothesis import strategies as st

from neurodag.errors import InputError
from neurodag.io.rdm_mat import read_rdm_mat


def _write(path, key, rdms, names, shape=None):
    structs = np.empty(len(rdms), dtype=[("name", object), ("RDM", object)])
    for k, (rdm, name) in enumerate(zip(rdms, names, strict=True)):
        structs[k] = (name, rdm)
    if shape is not None:
        structs = structs.reshape(shape)
    scipy.io.savemat(path, {key: structs})
    return path


def _rdm(n, rng):
    x = rng.normal(size=(n, 3))
    return np.linalg.norm(x[:, None] - x[None], axis=-1)


@settings(max_examples=10, deadline=None)
@given(n=st.integers(3, 12), count=st.integers(1, 5), seed=st.integers(0, 99))
def test_round_trip(tmp_path_factory, n, count, seed):
    rng = np.random.default_rng(seed)
    rdms = [_rdm(n, rng) for _ in range(count)]
    names = [f"model {k}" for k in range(count)]
    path = _write(tmp_path_factory.mktemp("m") / "rdms.mat", "Models", rdms, names)
    ds = read_rdm_mat(path)
    np.testing.assert_allclose(ds["rdm"].values, np.stack(rdms))
    assert ds["name"].values.tolist() == names
    assert ds.sizes["stimulus"] == n


def test_subject_session_from_a_2d_struct_array_and_vector_rdms(tmp_path):
    rng = np.random.default_rng(0)
    rdms = [_rdm(5, rng) for _ in range(4)]
    names = [f"hIT | S{k // 2} | Session: {k % 2 + 1}" for k in range(4)]
    rdms[1] = rdms[1][np.triu_indices(5, 1)]  # upper-triangle vector form
    ds = read_rdm_mat(_write(tmp_path / "b.mat", "RDMs", rdms, names, shape=(2, 2)))
    assert ds["subject"].values.tolist() == ["S0", "S0", "S1", "S1"]
    assert ds["session"].values.tolist() == ["0", "1", "0", "1"]
    assert ds["rdm"].shape == (4, 5, 5)


def test_errors_name_file_and_field(tmp_path):
    rng = np.random.default_rng(0)
    bad = _rdm(4, rng)
    bad[0, 1] += 1
    path = _write(tmp_path / "bad.mat", "RDMs", [_rdm(4, rng), bad], ["a", "b"])
    with pytest.raises(InputError, match=r"bad\.mat: RDMs\(2\)\.RDM: not symmetric"):
        read_rdm_mat(path)
    path = _write(tmp_path / "sizes.mat", "RDMs", [_rdm(4, rng), _rdm(5, rng)], ["a", "b"])
    with pytest.raises(InputError, match="different sizes"):
        read_rdm_mat(path)
    scipy.io.savemat(tmp_path / "none.mat", {"x": np.zeros(3)})
    with pytest.raises(InputError, match="found none"):
        read_rdm_mat(tmp_path / "none.mat")
    (tmp_path / "text.mat").write_text("not matlab")
    with pytest.raises(InputError, match="text.mat"):
        read_rdm_mat(tmp_path / "text.mat")
    with pytest.raises(InputError, match="Models"):
        read_rdm_mat(path, variable="Models")
