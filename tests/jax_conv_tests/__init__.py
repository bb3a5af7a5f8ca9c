"""JAX's own convolution tests, vendored from JAX (https://github.com/jax-ml/jax) at tag
jax-v0.10.2 under the Apache License 2.0 (the notice heads each file):

- ``lax_test_conv.py``: from ``tests/lax_test.py``, class ``LaxTest``;
- ``lax_autodiff_test_conv.py``: from ``tests/lax_autodiff_test.py``, class
  ``LaxAutodiffTest``.

They import ``jax._src.test_util`` and ``jax._src.lax_reference`` from the installed
jax wheel, as the originals do. Their file names match neither of pytest's patterns
(``test_*.py``, ``*_test.py``), so pytest does not run them with lax's own convolution:
``tests/test_jax_conv_suite.py`` runs them, with ``jaxconv.conv_general_dilated`` in
place of ``lax.conv_general_dilated`` for every impl, with and without x64.
"""
