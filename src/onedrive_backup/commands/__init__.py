"""One module per command (`<name>_cmd.py`): `register(subparsers)` and `run(args)`."""
