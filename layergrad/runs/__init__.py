"""Stage 3, runs: durable run directories.

config.py (RunConfig: CLI > YAML > defaults) · store.py (chunks, resume, final tables) ·
runner.py (load, compute, store, manifest) · sharding.py (torchrun ranks and shards) ·
progress.py (bar or plain lines) · interop.py (the original code's JSONL, both ways).
"""
