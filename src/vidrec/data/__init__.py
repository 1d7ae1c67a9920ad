"""Datasets, clip sampling, transforms, optical flow and the SynthMotion generator."""
