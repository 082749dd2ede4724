"""The frozen language model: loading and freezing (frozen), tokenisation (tokenize), model
introspection (introspect), compute dtypes, the offline zoo and saved backbone references."""
