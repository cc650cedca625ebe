"""`make bench`: each `bench/bench_*.py` measures one figure beside its baseline in the same run."""
