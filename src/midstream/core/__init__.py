"""The sans-IO core: the response timeline, the accumulator and (soon) tool-argument tracking."""
