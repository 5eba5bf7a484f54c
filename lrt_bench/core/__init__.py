"""The library's core: prompt layout, the reasoning network G_φ, latent-conditioned generation, model loading.

Imports no trainers or tools, and of eval only the router, inside LatentLM.generate_hybrid (hybrid mode);
tests/test_layers.py checks this.
"""
