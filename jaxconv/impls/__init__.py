"""The implementations, peers behind one contract (:mod:`jaxconv._registry`).

Importing this package registers each of them, in this order: ``lax`` (the
reference), ``gather``, ``shift``.
"""

from jaxconv.impls import lax  # noqa: F401  (first: the reference)

# isort: split
from jaxconv.impls import gather, shift  # noqa: F401
