"""The library's core: prompt layout, the reasoning network G_φ, latent-conditioned generation, model loading.

Imports nothing from eval, trainers or tools; tests/test_layers.py checks this.
"""
