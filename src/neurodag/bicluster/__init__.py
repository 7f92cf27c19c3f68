"""Bayesian bi-clustering of spike counts with latent structures (Wei et al.)."""
