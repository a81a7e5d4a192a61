"""The CLI's command bodies: argument checks, one call to the public surface (:mod:`avatar.api`),
printing. The typer app is :mod:`avatar.cli`; library code never imports these modules."""
