"""A griffe extension for the API reference: jaxconv's docstrings use reST roles.

``:func:`jaxconv.fold``` and friends would render literally in Markdown; this turns each
role into inline code (the name it points to). A parameter description that begins with
``>=`` (``groups: >= 1``) would start a block quote; the ``>`` is escaped.
"""

import re

import griffe

_ROLE = re.compile(r":(?:func|class|data|meth|attr|mod|obj|exc|const):`~?([^`]+)`")
_QUOTE = re.compile(r"^(\s*[A-Za-z_][\w, ]*:\s+)>", re.M)


class RestRoles(griffe.Extension):
    def _fix(self, obj) -> None:
        doc = obj.docstring
        if doc is not None:
            doc.value = _QUOTE.sub(r"\1\\>", _ROLE.sub(r"`\1`", doc.value))

    def on_object(self, *, obj, **kwargs) -> None:
        self._fix(obj)

    def on_instance(self, *, obj, **kwargs) -> None:
        self._fix(obj)
