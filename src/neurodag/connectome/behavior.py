"""Functional components against behaviour: window-averaged correlations with a circular-shift null.

For each NTF component ``c`` of the dynamic connectome (Dyballa et al., ICLR 2024) and each worm
``w``, the component's time course ``f_cw(window)`` is compared with each behavioural variable
``b_wv`` averaged over the same windows (the mean of the finite steps of the homogenized
``behavior(worm, time, variable)`` inside the window; NaN under ``min_valid_fraction`` finite):
``r_cwv`` is the Pearson correlation over the windows where both are finite.

The time course is either the shared NTF time factor ``time_factor(component, window)`` (the same
for every worm: meaningful when the worms share a protocol, e.g. stimulus epochs) or a per-worm
course ``(component, worm, window)``. Behaviour is the worm's own (its reversals do not line up
with another worm's), so the per-worm course is the one to correlate with spontaneous behaviour:
``component_time_courses`` projects each worm's affinity tensor onto a component's pair loadings,
``f_cw(window) = sum_p a_wp(window) g_cp / sum_p g_cp`` over the pairs ``p`` the worm recorded
(``g`` = ``pair_factor``), which is the worm's own activation of the component's pairs.

Null (circular shifts; Harris 2020, "Nonsense correlations in neuroscience", bioRxiv, on why
autocorrelated series need one): the worm's behaviour over its valid steps is rotated,
``b_k(t) = b((t + k) mod n_w)``, for every shift ``k`` with ``min_shift <= k <= n_w - min_shift``
(``min_shift`` = one window by default), keeping its autocorrelation while breaking its
alignment with the component;
the window means are recomputed for each shift. Per worm the two-sided p-value is
``(1 + #{k: |r_k| >= |r_0|}) / (1 + K)`` over all K allowed shifts (exhaustive, no randomness).
Across worms, ``corr_mean`` is the mean of the worms' ``r`` and its null draws one random
allowed shift per worm ``n_null`` times (seeded). P-values are corrected across components and
variables by Benjamini-Hochberg (Benjamini & Hochberg 1995, J. R. Stat. Soc. B 57; within each
worm for the per-worm ones), giving q-values.
"""

from __future__ import annotations

import numpy as np
import xarray as xr


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """BH q-values of the finite entries of ``p`` (any shape); NaN stays NaN."""
    p = np.asarray(p, dtype=np.float64)
    q = np.full(p.shape, np.nan)
    finite = np.isfinite(p)
    values = p[finite]
    m = values.size
    if not m:
        return q
    order = np.argsort(values)
    ranked = values[order] * m / np.arange(1, m + 1)
    ranked = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.minimum(ranked, 1.0)
    q[finite] = out
    return q


def component_time_courses(affinity, pair_factor: np.ndarray) -> np.ndarray:
    """(component, worm, window): each worm's affinity averaged over pairs, weighted by the
    component's pair loadings, over the pairs finite in that worm and window.

    ``affinity`` is the :class:`~neurodag.connectome.ntf.ObservedTensor` of the result (per worm,
    the pairs it recorded); ``pair_factor`` is (component, pair) or (pair, component) (taken as
    (pair, component) when its first axis is the pair axis and its second is not); NaN loadings
    weigh 0.
    """
    from scipy import sparse

    n_pair, n_window, n_worm = affinity.shape
    g = np.asarray(pair_factor, dtype=np.float64)
    if g.ndim == 2 and g.shape[0] == n_pair and g.shape[1] != n_pair:
        g = g.T
    if g.ndim != 2 or g.shape[1] != n_pair:
        raise ValueError(f"pair_factor {g.shape} does not match {n_pair} pairs")
    g = np.where(np.isfinite(g), g, 0.0)
    values = np.asarray(affinity.values, dtype=np.float64)
    finite = np.isfinite(values)
    filled = np.where(finite, values, 0.0)
    entries = np.arange(affinity.pair.size)
    num = np.zeros((g.shape[0], n_worm, n_window))
    den = np.zeros_like(num)
    for c, loading in enumerate(g):  # worm <- entry sums weighted by the pair loadings
        weigh = sparse.csr_matrix(
            (loading[affinity.pair], (affinity.worm, entries)), shape=(n_worm, entries.size)
        )
        num[c] = weigh @ filled
        den[c] = weigh @ finite
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / den, np.nan)


def _shifted_window_means(
    b: np.ndarray, starts: np.ndarray, length: int, shifts: np.ndarray, min_valid: float
) -> np.ndarray:
    """(shift, window) means of ``b`` rotated by each shift; NaN where under ``min_valid``
    finite or the window runs past ``b``."""
    n = b.size
    finite = np.isfinite(b)
    doubled = np.concatenate([np.where(finite, b, 0.0)] * 2)
    counts = np.concatenate([finite] * 2).astype(np.float64)
    csum = np.concatenate([[0.0], np.cumsum(doubled)])
    ccount = np.concatenate([[0.0], np.cumsum(counts)])
    inside = starts + length <= n
    first = (starts[None, inside] + shifts[:, None]) % n
    sums = csum[first + length] - csum[first]
    count = ccount[first + length] - ccount[first]
    out = np.full((shifts.size, starts.size), np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        out[:, inside] = np.where(count >= min_valid * length, sums / count, np.nan)
    return out


def _correlations(courses: np.ndarray, means: np.ndarray) -> np.ndarray:
    """(shift, component) Pearson correlations over the windows finite in both."""
    means = means - np.nanmean(means[0]) if np.isfinite(means[0]).any() else means
    k_mask = np.isfinite(means)  # (shift, window)
    out = np.full((means.shape[0], courses.shape[0]), np.nan)
    for c, f in enumerate(courses):
        f_ok = np.isfinite(f)
        mask = (k_mask & f_ok[None]).astype(np.float64)
        fz = np.where(f_ok, f - np.nanmean(f) if f_ok.any() else 0.0, 0.0)
        mz = np.where(mask > 0, means, 0.0)
        n = mask.sum(axis=1)
        sf, sff = mask @ fz, mask @ (fz * fz)
        sm, smm, sfm = mz.sum(axis=1), (mz * mz).sum(axis=1), mz @ fz
        with np.errstate(invalid="ignore", divide="ignore"):
            cov = sfm - sf * sm / n
            var = (sff - sf * sf / n) * (smm - sm * sm / n)
            r = cov / np.sqrt(var)
        good = (n >= 3) & (var > 1e-24)
        out[:, c] = np.where(good, np.clip(r, -1.0, 1.0), np.nan)
    return out


def behaviour_correlations(
    courses: np.ndarray,
    window_starts: np.ndarray,
    window_length: int,
    behavior: xr.DataArray,
    valid_length: np.ndarray | None = None,
    *,
    min_shift: int | None = None,
    min_valid_fraction: float = 0.8,
    n_null: int = 1000,
    seed: int = 0,
) -> xr.Dataset:
    """Correlations of component time courses with window-averaged behaviour, and their null.

    ``courses``: (component, window) shared time factors or (component, worm, window) per-worm
    courses; ``window_starts``/``window_length``: the windows in steps of the homogenized time
    grid (``neurodag.connectome.affinity.WindowGrid``); ``behavior``: the homogenized
    ``behavior(worm, time, variable)``; ``valid_length``: each worm's number of valid steps
    (default: all). See the module docstring for the statistics.
    """
    courses = np.asarray(courses, dtype=np.float64)
    worms = behavior["worm"].values
    variables = [str(v) for v in behavior["variable"].values]
    n_worm, n_time, n_var = behavior.shape
    if courses.ndim == 2:
        courses = np.broadcast_to(courses[:, None], (courses.shape[0], n_worm, courses.shape[1]))
    n_comp, n_course_worms, n_window = courses.shape
    starts = np.asarray(window_starts, dtype=np.int64)
    if n_course_worms != n_worm or starts.size != n_window:
        raise ValueError(
            f"courses {courses.shape} do not match {n_worm} worms and {starts.size} windows"
        )
    lengths = np.full(n_worm, n_time) if valid_length is None else np.asarray(valid_length)
    shift0 = int(window_length if min_shift is None else min_shift)
    values = behavior.transpose("worm", "time", "variable").values.astype(np.float64)
    corr = np.full((n_comp, n_worm, n_var), np.nan)
    p = np.full_like(corr, np.nan)
    window_mean = np.full((n_worm, n_window, n_var), np.nan)
    n_shifts = np.zeros(n_worm, dtype=np.int64)
    rng = np.random.default_rng(seed)
    null_sum = np.zeros((n_null, n_comp, n_var))
    null_count = np.zeros_like(null_sum)
    for w in range(n_worm):
        n = int(lengths[w])
        shifts = np.arange(shift0, n - shift0 + 1)
        n_shifts[w] = shifts.size
        draws = rng.integers(0, max(shifts.size, 1), n_null)
        for v in range(n_var):
            b = values[w, :n, v]
            if not np.isfinite(b).any():
                continue
            means = _shifted_window_means(
                b, starts, window_length, np.concatenate([[0], shifts]), min_valid_fraction
            )
            window_mean[w, :, v] = means[0]
            r = _correlations(courses[:, w], means)  # (1 + shifts, component)
            corr[:, w, v] = r[0]
            if shifts.size:
                null = r[1:]
                beats = (np.abs(null) >= np.abs(r[0])[None] - 1e-12) & np.isfinite(null)
                k = np.isfinite(null).sum(axis=0)
                p[:, w, v] = np.where(
                    np.isfinite(r[0]) & (k > 0), (1 + beats.sum(axis=0)) / (1 + k), np.nan
                )
                drawn = null[draws]  # (n_null, component)
                ok = np.isfinite(drawn) & np.isfinite(r[0])[None]
                null_sum[:, :, v] += np.where(ok, drawn, 0.0)
                null_count[:, :, v] += ok
    q = np.stack([benjamini_hochberg(p[:, w]) for w in range(n_worm)], axis=1)
    with np.errstate(invalid="ignore"):
        corr_mean = np.nanmean(np.where(np.isfinite(corr), corr, np.nan), axis=1)
        null_mean = np.where(null_count > 0, null_sum / np.maximum(null_count, 1), np.nan)
    beats = (np.abs(null_mean) >= np.abs(corr_mean)[None] - 1e-12) & np.isfinite(null_mean)
    k = np.isfinite(null_mean).sum(axis=0)
    p_mean = np.where(np.isfinite(corr_mean) & (k > 0), (1 + beats.sum(axis=0)) / (1 + k), np.nan)
    ds = xr.Dataset(
        {
            "behavior_corr": (("component", "worm", "variable"), corr),
            "behavior_p": (("component", "worm", "variable"), p),
            "behavior_q": (("component", "worm", "variable"), q),
            "behavior_corr_mean": (("component", "variable"), corr_mean),
            "behavior_p_mean": (("component", "variable"), p_mean),
            "behavior_q_mean": (("component", "variable"), benjamini_hochberg(p_mean)),
            "behavior_window_mean": (("worm", "window", "variable"), window_mean),
            "behavior_n_shifts": ("worm", n_shifts),
        },
        coords={"component": np.arange(n_comp), "worm": worms, "variable": variables},
        attrs={
            "behavior_null": "circular shifts of each worm's behaviour (see "
            "neurodag.connectome.behavior)",
            "behavior_min_shift_steps": shift0,
            "behavior_n_null": int(n_null),
            "behavior_seed": int(seed),
        },
    )
    ds["behavior_corr"].attrs["description"] = (
        "Pearson r of the component time course with the window-averaged behaviour"
    )
    ds["behavior_q"].attrs["description"] = "BH across components and variables, per worm"
    ds["behavior_q_mean"].attrs["description"] = "BH across components and variables"
    return ds


def behaviour_against_components(
    result: xr.Dataset,
    homogenized: xr.Dataset,
    params: dict,
    *,
    per_worm: bool = True,
    n_null: int = 1000,
    seed: int = 0,
) -> xr.Dataset:
    """``behaviour_correlations`` for a dynamic-connectome ``result`` and the homogenized file it
    was computed from (which holds ``behavior``); ``params`` = ``stages.connectome`` (its
    ``window_s``, ``step_s``, ``min_valid_fraction`` define the windows, as the pipeline's).

    ``per_worm``: correlate each worm's own course of each component (``component_time_courses``
    of the result's affinity and pair factors); else the shared ``time_factor``.
    """
    from neurodag.connectome.affinity import WindowGrid

    time = homogenized["time"].values
    dt = float(np.median(np.diff(time)))
    grid = WindowGrid.from_seconds(len(time), dt, params["window_s"], params["step_s"])
    if grid.starts.size != result.sizes["window"]:
        raise ValueError(
            f"{grid.starts.size} windows from the parameters, {result.sizes['window']} in result"
        )
    behaviour = homogenized["behavior"].sel(worm=result["worm"].values)
    if per_worm:
        from neurodag.connectome.pipeline import observed_tensor

        courses = component_time_courses(observed_tensor(result), result["pair_factor"].values)
    else:
        courses = result["time_factor"].values
    valid = homogenized["valid_length"].sel(worm=result["worm"].values).values
    ds = behaviour_correlations(
        courses,
        grid.starts,
        grid.length,
        behaviour,
        valid,
        min_valid_fraction=params["min_valid_fraction"],
        n_null=n_null,
        seed=seed,
    )
    ds.attrs["behavior_courses"] = "per-worm component courses" if per_worm else "time_factor"
    if per_worm:
        ds["behavior_course"] = (("component", "worm", "window"), courses)
    return ds


def plot_components_over_behaviour(
    ds: xr.Dataset, window_time: np.ndarray, path, worm: int = 0, title: str = ""
):
    """One worm: each component's course (scaled) over the window-averaged behaviour that it
    correlates with most, with r and q in the panel title."""
    from neurodag.plotting import figure, save_figure

    components = ds["component"].values
    fig, axes = figure(len(components), 1, width=11, height=1.6 * len(components) + 0.8,
                       squeeze=False, sharex=True)  # fmt: skip
    name = str(ds["worm"].values[worm])
    for ax, c in zip(axes[:, 0], components, strict=True):
        r = ds["behavior_corr"].values[c, worm]
        if "behavior_course" in ds:
            course = ds["behavior_course"].values[c, worm]
        else:
            course = np.full(window_time.size, np.nan)
        if not np.isfinite(r).any():
            ax.set_title(f"component {c}: no behaviour")
            continue
        v = int(np.nanargmax(np.abs(r)))
        b = ds["behavior_window_mean"].values[worm, :, v]

        def scaled(x):
            lo, hi = np.nanmin(x), np.nanmax(x)
            return (x - lo) / (hi - lo) if hi > lo else x * 0

        ax.plot(window_time, scaled(b), color="0.5", lw=1, label=str(ds["variable"].values[v]))
        if np.isfinite(course).any():
            ax.plot(window_time, scaled(course), color="C3", lw=1, label=f"component {c}")
        q = ds["behavior_q"].values[c, worm, v]
        ax.set_title(f"component {c} vs {ds['variable'].values[v]}: r = {r[v]:.2f}, q = {q:.3g}")
        ax.legend(loc="upper right", fontsize=7)
        ax.set_yticks([])
    axes[-1, 0].set_xlabel("window centre (s)")
    fig.suptitle(title or f"worm {name}: component courses over behaviour (each scaled)")
    return save_figure(fig, path)
