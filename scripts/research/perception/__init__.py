"""Research code of the perception stage: SynFER-style synthetic expression data, training, evaluation."""
