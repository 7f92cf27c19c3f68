"""Representational geometry and topological RSA (Lin & Kriegeskorte)."""
