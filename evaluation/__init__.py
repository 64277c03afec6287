"""Evaluation: the NME protocol, metrics and plots."""
