"""The log simulator's parts; the entry point is `selflearn.simulate.simulate`."""
