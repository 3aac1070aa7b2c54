"""VLFeat outputs stored for the parity tests; see make_golden.py."""
