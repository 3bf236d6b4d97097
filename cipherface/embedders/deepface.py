"""DeepFace embedder: a built-in plugin."""
