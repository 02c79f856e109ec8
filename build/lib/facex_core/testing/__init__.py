"""Random-weight model files in the exact layouts of the published ones.

No real weights can be fetched in CI, so tests, benchmarks and installation checks use
files that have the published key names, shapes and ONNX graph patterns with random
values: every loader is exercised on the real layout, not on a shortcut.
"""
