"""The sans-IO core above the wire layer: the accumulator (events -> Message), the incremental JSON
parser, tool-argument tracking and validation, the pure retry decision and markdown healing."""
