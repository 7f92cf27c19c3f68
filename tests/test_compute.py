"""The Dask client from config and the torch device."""

import os

from neurodag.compute import available_cores, dask_client, torch_device


def test_local_client_runs_work_and_pins_blas():
    with dask_client({"cluster": "local", "workers": 1}) as client:
        assert client.submit(sum, [1, 2, 3]).result() == 6
        assert len(client.scheduler_info()["workers"]) == 1
    assert os.environ["OMP_NUM_THREADS"] == "1"


def test_workers_never_exceed_cores():
    with dask_client({"workers": 64}) as client:
        assert len(client.scheduler_info()["workers"]) <= available_cores()


def test_torch_device_cpu():
    assert torch_device("cpu").type == "cpu"
    assert torch_device("auto").type in {"cpu", "cuda"}
