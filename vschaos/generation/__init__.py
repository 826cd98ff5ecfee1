"""Generation with a trained spectral VAE.

* ``trajectories``: latent paths ``(steps, latent_dim)`` (sin, random, line, circle, interpolate);
* ``reconstruct``: sound files through the model (``generate.py reconstruct``), metrics;
* ``synthesis``: latent paths decoded to sound (``generate.py trajectories``);
* ``labels``: ``--labels`` parsing, class names, training-tree metadata;
* ``plots``: latent curves above the spectrogram (PNG).

Submodules are imported explicitly (``from vschaos.generation.reconstruct import ...``) so that
importing the package stays cheap.
"""
