"""Speed and memory benchmarks (not tests); results go to BENCHMARKS.md with the device."""
