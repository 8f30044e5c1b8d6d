"""Model construction that needs no download: the tiny offline chat model."""
