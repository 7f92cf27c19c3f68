import re

from hypothesis import given
from hypothesis import strategies as st

from neurodag.io.wormneuroatlas import data_dir
from neurodag.neurons import (
    WORMNEUROATLAS_ALIASES,
    canonical_neurons,
    is_non_neuronal,
    map_names,
    normalise_name,
)


def test_canonical_list_is_the_300_alphabetical():
    neurons = canonical_neurons()
    assert len(neurons) == 300 == len(set(neurons))
    assert list(neurons) == sorted(neurons)
    assert "CANL" not in neurons and "CANR" not in neurons
    assert {"AVAL", "AVAR", "AWCL", "AWCR", "VB1", "AS11", "NSML"} <= set(neurons)


def test_canonical_list_matches_wormneuroatlas_neurons():
    lines = (data_dir() / "neuron_ids.txt").read_text().splitlines()
    atlas = {WORMNEUROATLAS_ALIASES.get(n, n) for n in (x.split("\t")[1] for x in lines)}
    assert atlas == set(canonical_neurons())


NUMBERED = [n for n in canonical_neurons() if re.fullmatch(r"(AS|DA|DB|DD|VA|VB|VC|VD)\d+", n)]


@given(st.sampled_from(NUMBERED), st.integers(0, 2))
def test_zero_padding_is_dropped(name, pad):
    cls, number = name[:2], name[2:]
    raw = f"{cls}{'0' * pad}{number}"
    assert normalise_name(raw) == name
    assert normalise_name(f"  {raw.lower()} ") == name


@given(st.sampled_from(canonical_neurons()))
def test_canonical_names_are_fixed_points(name):
    assert normalise_name(name) == name


def test_map_names_reports_non_neuronal_and_unknown():
    mapping, report = map_names(["VB01", "AVAL", "BWM-DL01", "CANL", "GLRDL", "XYZ9"])
    assert mapping["VB01"] == "VB1" and mapping["AVAL"] == "AVAL"
    assert mapping["BWM-DL01"] is None and mapping["XYZ9"] is None
    assert report.renamed == {"VB01": "VB1"}
    assert report.non_neuronal == {"BWM-DL01", "CANL", "GLRDL"}
    assert report.unknown == {"XYZ9"}
    assert is_non_neuronal("MDL01") and not is_non_neuronal("AVAL")


def test_wormneuroatlas_awc_aliases():
    mapping, _ = map_names(["AWCOFF", "AWCON", "AWCOF"], WORMNEUROATLAS_ALIASES)
    assert mapping == {"AWCOFF": "AWCL", "AWCON": "AWCR", "AWCOF": "AWCL"}
