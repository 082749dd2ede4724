"""Bridges to the field's tools; each submodule imports its optional dependency only when imported itself.

- :mod:`glot.integrations.sentence_transformers`: ``GLOTPooling``, a sentence-transformers module, and
  ``run_to_sentence_transformer`` (needs ``pip install glot-pooling[st]``);
- :mod:`glot.integrations.mteb`: ``GLOTMTEBEncoder`` for MTEB evaluation (needs ``pip install glot-pooling[mteb]``).
"""
