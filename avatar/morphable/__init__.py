"""Implicit SDF morphable face model (SSIF-style) and the ICT FaceKit teacher it learns from."""
