"""Training KW-MLP on Speech Commands-style corpora (optional extra: pip install .[train])."""
