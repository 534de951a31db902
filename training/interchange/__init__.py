"""Files in and out of docloop, a module per format (as healthchecks keeps hc/integrations/<name>/):

- `annotations`: export and import of annotated documents in every format below, through one neutral
  record per document (`records`);
- `conll`, `jsonl`, `labelstudio`: those formats (CoNLL also as `manage.py import_conll`'s one file, one
  document);
- `review_csv`: the legacy review CSV of decisions about existing entities;
- `excel`: Excel workbooks as dataset rows (`training.services.datasets`).

Documents made from tokens (rendered to a PDF, extracted, read back) come from `documents.from_tokens`.
"""
