"""The implementations, peers behind one contract (:mod:`jaxconv._registry`).

Importing this package registers each of them, in this order (the order of
``jaxconv.available_impls()``): ``lax`` (the reference), ``gather``, ``shift``,
``fold``.
"""

from jaxconv.impls import lax  # noqa: F401  (first: the reference)

# isort: split
from jaxconv.impls import gather  # noqa: F401

# isort: split
from jaxconv.impls import shift  # noqa: F401

# isort: split
from jaxconv.impls import fold  # noqa: F401
