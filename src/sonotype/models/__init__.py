"""Networks by name: the seeds' architectures, the recommended defaults and the linear models.

The table of names lives in :mod:`sonotype.models.registry` (``build_model``, ``from_spec``);
every other module here defines architectures and knows nothing of the registry.
"""
