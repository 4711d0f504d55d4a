"""Running the dashboard's pages in tests (streamlit.testing.v1.AppTest)."""
from __future__ import annotations

import json
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


def chart_specs(at: AppTest) -> list[dict]:
    """Every Plotly chart on the page as its parsed figure (data, layout). Tests compare these values, never the JSON
    text: how that text escapes non-ASCII characters depends on Plotly's JSON engine (orjson writes "×", the standard
    json module "\\u00d7"), and orjson is only there when something else installed it."""
    return [json.loads(chart.proto.spec) for chart in at.get("plotly_chart")]


def chart_title(spec: dict) -> str:
    """A parsed chart's title ("" when it has none)."""
    return (spec["layout"].get("title") or {}).get("text", "")
