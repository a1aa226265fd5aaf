"""Shared Streamlit widgets and page helpers (the only place besides pages/ and app.py that imports streamlit)."""
