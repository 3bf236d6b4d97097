"""DeepFace embedder (placeholder registration filled in by the embedder issue)."""
