"""Import: channel files in, and the list of past batches."""

from __future__ import annotations

import streamlit as st

from core.importer import list_batches
from ui.common import db_session, for_display, require_permission, tr

actor = require_permission("import")
st.title(tr("import.title"))

st.subheader(tr("import.past_batches"))
with db_session() as session:
    batches = list_batches(session=session, limit=100)
if batches.empty:
    st.info(tr("import.no_batches"))
else:
    st.dataframe(
        for_display(batches, values={"status": "import_status", "kind": "import_kind"}, times=("created_at",),
                    columns=["id", "created_at", "filename", "channel", "campaign", "kind", "status", "row_count",
                             "inserted", "updated", "duplicates_in_file", "invalid", "touchpoints"]),
        hide_index=True, width="stretch",
    )
