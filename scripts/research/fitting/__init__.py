"""Research code of the fitting stage (see :mod:`research`)."""
