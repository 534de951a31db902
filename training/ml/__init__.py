"""docloop's machine-learning code: plain Python, no Django.

The only package that imports torch, transformers, datasets or peft, and only in the modules that need
them (`token_classification`, `data`, `device`): `bio`, `conll`, `metrics` and `hyperparameters` are
pure Python, so forms and commands can read the hyperparameter defaults without loading torch. The
Django side (`training.ingestion`, `training.services`, `training.dataset_builder`) calls in here with
plain values and gets plain values back.
"""
