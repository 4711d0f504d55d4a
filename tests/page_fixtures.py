"""Running the dashboard's pages in tests (streamlit.testing.v1.AppTest)."""
from __future__ import annotations

from pathlib import Path

import streamlit as st
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
COMPARISON_PAGE = str(ROOT / "pages" / "2_Model_Comparison.py")


def run_comparison_page() -> AppTest:
    """The Model Comparison page, run once with fresh caches."""
    st.cache_data.clear()  # the registry list is cached across runs in this process
    st.cache_resource.clear()
    at = AppTest.from_file(COMPARISON_PAGE, default_timeout=90)
    at.run()
    return at
