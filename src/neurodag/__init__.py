"""neurodag: neural recordings into labelled xarray datasets, analysed as stages of one DAG."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("neurodag")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"
