"""The one AgGrid wrapper. Pages give it one page of rows (paged and filtered in SQL).

AppTest cannot render custom components, so with ``LEADLOOP_GRID=native`` (set by the page tests) this falls
back to ``st.dataframe`` with native row selection.
"""

from __future__ import annotations

import os
from typing import Literal

import pandas as pd
import streamlit as st


def show_grid(
    frame: pd.DataFrame,
    *,
    key: str,
    selection: Literal["single", "multiple"] | None = None,
    height: int = 420,
    column_labels: dict[str, str] | None = None,
    hidden: list[str] | None = None,
) -> pd.DataFrame:
    """Render ``frame`` and return the selected rows (an empty frame when nothing is selected)."""
    shown = frame.drop(columns=[c for c in (hidden or []) if c in frame.columns])
    if column_labels:
        shown = shown.rename(columns=column_labels)
    if os.environ.get("LEADLOOP_GRID") == "native":
        return _native(frame, shown, key=key, selection=selection, height=height)
    from st_aggrid import AgGrid, GridOptionsBuilder

    builder = GridOptionsBuilder.from_dataframe(shown)
    builder.configure_default_column(resizable=True, sortable=True, filter=True)
    if selection:
        builder.configure_selection(selection_mode=selection, use_checkbox=selection == "multiple")
    response = AgGrid(
        shown,
        gridOptions=builder.build(),
        height=height,
        key=key,
        # Rerun only when the selection changes: sorting or filtering in the browser must not rerun the page.
        update_on=["selectionChanged"] if selection else [],
        show_download_button=False,  # exports go through core.export, which neutralizes formulas
        show_search=True,
        theme="streamlit",
    )
    selected = response.selected_rows
    if selected is None or len(selected) == 0:
        return frame.iloc[0:0]
    positions = [int(i) for i in selected.index] if isinstance(selected, pd.DataFrame) else []
    return frame.iloc[positions] if positions else frame.iloc[0:0]


def _native(frame: pd.DataFrame, shown: pd.DataFrame, *, key: str, selection: str | None, height: int) -> pd.DataFrame:
    if not selection:
        st.dataframe(shown, height=height, key=key, hide_index=True)
        return frame.iloc[0:0]
    event = st.dataframe(
        shown,
        height=height,
        key=key,
        hide_index=True,
        on_select="rerun",
        selection_mode="multi-row" if selection == "multiple" else "single-row",
    )
    rows = list(getattr(getattr(event, "selection", None), "rows", []) or [])
    return frame.iloc[rows]
