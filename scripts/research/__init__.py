"""Research code: training, evaluation and dataset building, beside the library and never imported by it.

It lives inside ``scripts/`` because the scripts are its only entry points: ``python scripts/train_x.py``
puts ``scripts/`` on ``sys.path``, so ``import research`` works without installing it, and ``pip install``
never ships it (tests reach it through pytest's ``pythonpath = ["scripts"]``). One sub-package per stage:
``morphable`` (training the face model, its dataset, the ICT teacher, mesh metrics), ``fitting`` (synthetic
ground truth, NoW-style metrics), ``generator`` (captions data, training, evaluation), ``listener`` (the
behavioural teacher, datasets, training, metrics), ``tracking`` (the synthetic tracking benchmark).
"""
