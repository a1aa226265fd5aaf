"""Admin → Names: how channel, campaign, tag, rule and workflow names read in each interface language."""

from __future__ import annotations

import streamlit as st

from core import display_names
from core.auth import Actor
from core.i18n import LANGUAGES
from ui.common import db_session, names_changed, run_action, tr

PERMISSION = "manage_channels"


def render(actor: Actor) -> None:
    st.caption(tr("admin.names.help"))
    with db_session() as session:
        table = display_names.table(session)
    kinds = {kind: tr(f"admin.names.kind.{kind}") for kind in display_names.KINDS}
    kind_filter = st.segmented_control(tr("admin.names.filter"), list(kinds), format_func=kinds.get,
                                       key="names_kind", selection_mode="single")
    shown = table[table["kind"] == kind_filter] if kind_filter else table
    headers = {"kind_label": tr("admin.names.col.kind"), "name": tr("admin.names.col.name"),
               **{code: tr(f"admin.names.col.{code}") for code in LANGUAGES}}
    shown = shown.assign(kind_label=shown["kind"].map(kinds))
    edited = st.data_editor(
        shown[list(headers)].rename(columns=headers),
        column_config={
            headers["kind_label"]: st.column_config.TextColumn(disabled=True),
            headers["name"]: st.column_config.TextColumn(disabled=True),
            **{headers[code]: st.column_config.TextColumn(max_chars=display_names.MAX_LENGTH) for code in LANGUAGES},
        },
        hide_index=True, width="stretch", num_rows="fixed", key=f"names_editor_{kind_filter}",
    ).rename(columns={text: column for column, text in headers.items()})
    if st.button(tr("admin.names.save"), type="primary", key="names_save"):
        rows = edited.assign(kind=shown["kind"].to_numpy()).to_dict("records")
        changed = run_action(display_names.save, actor=actor, rows=rows, rerun=False)
        if changed is not None:
            names_changed()
            st.session_state["flash"] = tr("admin.names.saved", count=changed)
            st.rerun()
