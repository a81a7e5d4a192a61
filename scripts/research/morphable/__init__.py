"""Research code of the morphable stage (see :mod:`research`)."""
