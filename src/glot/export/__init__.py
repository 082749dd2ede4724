"""Texts -> vectors for users: the Encoder (and its save/load), Hub push/download, model cards."""
