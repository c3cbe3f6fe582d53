"""The server side of bench/throughput.py: production settings plus two bench-only hooks."""
