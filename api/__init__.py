"""The HTTP service over the photocheck library (FastAPI). Thin by design."""
