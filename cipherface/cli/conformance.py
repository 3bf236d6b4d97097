"""`cipherface conformance`."""

COMMANDS: list = []
