"""Research code of the generator stage (see :mod:`research`)."""
