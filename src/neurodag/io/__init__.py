"""Readers (one module per source format) and the NetCDF writer."""
