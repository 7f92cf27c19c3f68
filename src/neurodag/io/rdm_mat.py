"""Reader for RDMs stored in MATLAB files (format ``rdm-mat``).

The RSA toolbox for MATLAB (Nili et al., 2014) and published RDM sets such as the 92-image set of
Kriegeskorte et al. (2008) store RDMs as a struct array whose elements have a ``.name`` (text) and
an ``.RDM`` (n x n, or an upper-triangle vector) field. A 2-D struct array is read as subject x
session; otherwise the subject is the middle field of names like ``"hIT | BE | Session: 1"`` when
every name has that form, and each RDM is its own subject when not.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import xarray as xr

from neurodag.errors import InputError
from neurodag.geometry.rdm import square


def _struct_array(path: Path, variable: str | None):
    import scipy.io

    try:
        contents = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
    except NotImplementedError as exc:  # MATLAB v7.3 (HDF5) files
        raise InputError(
            path, None, f"unsupported MATLAB file version ({exc}); save it with -v7 or earlier"
        ) from exc
    except (OSError, ValueError, scipy.io.matlab.MatReadError) as exc:
        raise InputError(path, None, f"not a readable MATLAB file ({exc})") from exc
    candidates = {
        key: value
        for key, value in contents.items()
        if not key.startswith("__")
        and all(hasattr(v, "RDM") and hasattr(v, "name") for v in np.atleast_1d(value).flat)
    }
    if variable is not None:
        if variable not in candidates:
            raise InputError(
                path, variable, "no struct array with .name and .RDM fields under this name"
            )
        return variable, candidates[variable]
    if len(candidates) != 1:
        found = ", ".join(candidates) or "none"
        raise InputError(
            path,
            None,
            f"expected exactly one struct array with .name and .RDM fields, found {found}; "
            "name it with the dataset's `variable` option",
        )
    return next(iter(candidates.items()))


def read_rdm_mat(path: str | Path, variable: str | None = None) -> xr.Dataset:
    """``rdm(entry, stimulus, stimulus2)`` with ``name``, ``subject``, ``session`` on ``entry``."""
    path = Path(path)
    if not path.is_file():
        raise InputError(path, None, "file not found")
    key, structs = _struct_array(path, variable)
    array = np.atleast_1d(structs)
    matrices, names = [], []
    for index, item in enumerate(array.flat):
        matrix = np.asarray(item.RDM, dtype=float)
        if matrix.ndim == 1:
            try:
                matrix = square(matrix)
            except ValueError as exc:
                raise InputError(path, f"{key}({index + 1}).RDM", str(exc)) from None
        if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
            raise InputError(path, f"{key}({index + 1}).RDM", f"not square: {matrix.shape}")
        if not np.allclose(matrix, matrix.T, equal_nan=True):
            raise InputError(path, f"{key}({index + 1}).RDM", "not symmetric")
        matrices.append(matrix)
        names.append(str(item.name))
    sizes = {m.shape[0] for m in matrices}
    if len(sizes) != 1:
        raise InputError(path, f"{key}.RDM", f"RDMs of different sizes {sorted(sizes)}")

    if array.ndim == 2:
        subject = [f"{i}" for i in range(array.shape[0]) for _ in range(array.shape[1])]
        session = [f"{j}" for _ in range(array.shape[0]) for j in range(array.shape[1])]
        parts = [name.split("|") for name in names]
        if all(len(p) == 3 for p in parts):  # keep the names' subject codes where present
            subject = [p[1].strip() for p in parts]
    else:
        parts = [name.split("|") for name in names]
        if all(len(p) == 3 for p in parts):
            subject = [p[1].strip() for p in parts]
            session = [p[2].strip() for p in parts]
        else:
            subject = names
            session = ["0"] * len(names)
    n = sizes.pop()
    rdms = np.stack(matrices)
    np.einsum("kii->ki", rdms)[:] = 0.0  # dissimilarity of a stimulus with itself
    return xr.Dataset(
        {"rdm": (("entry", "stimulus", "stimulus2"), rdms)},
        coords={
            "entry": np.arange(len(names)),
            "name": ("entry", names),
            "subject": ("entry", subject),
            "session": ("entry", session),
            "stimulus": np.arange(n),
            "stimulus2": np.arange(n),
        },
        attrs={"source": str(path), "variable": key},
    )


def rdm_files(spec, recording: str | None, suffixes: tuple[str, ...]) -> list[Path]:
    """The files of a kind rdm dataset: its RDMs, then its model RDMs if any."""
    return [Path(spec["path"])] + ([Path(spec["models"])] if spec.get("models") else [])
