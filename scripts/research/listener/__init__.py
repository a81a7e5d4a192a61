"""Research code of the listener stage (see :mod:`research`)."""
