"""Inference backends, one module each, all following the contract in docs/architecture.md."""
