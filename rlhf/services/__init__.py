"""Keyword-only domain functions, session first; the web app, CLI and workers share them."""
