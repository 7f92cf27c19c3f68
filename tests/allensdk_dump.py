"""What AllenSDK's EcephysSession reports for one NWB file, as JSON: run under a Python that has
AllenSDK (tests/test_allensdk_reference.py runs it; it never imports neurodag)."""

import json
import sys
import warnings


def main(path: str, out: str) -> None:
    warnings.simplefilter("ignore")
    from allensdk.brain_observatory.ecephys.ecephys_session import EcephysSession

    session = EcephysSession.from_nwb_path(path)
    units = session.units
    presentations = session.stimulus_presentations
    epochs = session.get_stimulus_epochs()

    def plain(values):
        return [None if v != v else v for v in values.tolist()]  # NaN -> null

    report = {
        "units": {
            "id": units.index.tolist(),
            "structure_acronym": units["structure_acronym"].astype(str).tolist(),
            "probe_id": units["probe_id"].tolist(),
        },
        "presentations": {
            "id": presentations.index.tolist(),
            "stimulus_name": presentations["stimulus_name"].astype(str).tolist(),
            "start_time": presentations["start_time"].tolist(),
            "stop_time": presentations["stop_time"].tolist(),
            "stimulus_condition_id": plain(presentations["stimulus_condition_id"]),
        },
        "epochs": {
            "stimulus_name": epochs["stimulus_name"].astype(str).tolist(),
            "start_time": epochs["start_time"].tolist(),
            "stop_time": epochs["stop_time"].tolist(),
        },
    }
    with open(out, "w") as handle:
        json.dump(report, handle)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
