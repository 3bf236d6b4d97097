"""Commands on photos: verify, evaluate, demo."""

COMMANDS: list = []
