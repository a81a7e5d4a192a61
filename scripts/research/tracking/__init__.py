"""Research code of the tracking stage (see :mod:`research`)."""
