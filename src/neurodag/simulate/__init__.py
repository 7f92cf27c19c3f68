"""Seeded generators that write the same formats as the real sources, plus ground truth."""
