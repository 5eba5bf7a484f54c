"""The library's core: prompt layout, the reasoning network G_φ, latent-conditioned generation, model loading.

Imports nothing above it (eval, trainers, tools); tests/test_layers.py checks this.
"""
