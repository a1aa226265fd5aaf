"""Import: pick a channel, upload a file, check the preview and mapping, confirm; past batches with undo."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.channels import list_campaigns
from core.clock import utcnow
from core.errors import LeadLoopError
from core.importer import (
    FIELDS,
    IGNORE,
    list_batches,
    max_upload_bytes,
    preview,
    problem_report_csv,
    run_import,
    undo_batch,
)
from core.importer.run import list_channels_for_import
from ui.common import (
    db_session,
    for_display,
    lang,
    require_permission,
    show_error,
    show_flash,
    shown_name,
    tr,
)

actor = require_permission("import")
st.title(tr("import.title"))
show_flash()
state = st.session_state

with db_session() as session:
    channels = list_channels_for_import(session=session)
    limit_mb = max_upload_bytes(session) // (1024 * 1024)

# ---------------------------------------------------------------------------------------------------------------
# The summary of the import just done (kept across the rerun that clears the upload)
# ---------------------------------------------------------------------------------------------------------------
done = state.get("import_summary")
if done:
    if done["already_imported"]:
        st.info(tr("import.nothing_done", batch_id=done["batch_id"]))
    else:
        st.success(tr("import.done", **done))
    if done["problems"]:
        st.download_button(tr("import.download_problems"), done["report_csv"], file_name="import-problems.csv",
                           mime="text/csv", key="import_summary_problems", icon=":material/download:")
    if st.button(tr("import.summary_close"), key="import_summary_close"):
        state.pop("import_summary", None)
        st.rerun()

if channels.empty:
    st.info(tr("import.no_channels"))
    st.stop()

# ---------------------------------------------------------------------------------------------------------------
# Channel, campaign, file
# ---------------------------------------------------------------------------------------------------------------
left, right = st.columns(2)
channel_names = {int(i): shown_name("channel", n) for i, n in zip(channels["id"], channels["name"], strict=True)}
channel_id = left.selectbox(tr("import.channel"), list(channel_names), format_func=channel_names.get,
                            key="import_channel")
with db_session() as session:
    campaigns = list_campaigns(session=session, channel_id=int(channel_id))
campaign_names = {None: tr("import.no_campaign"),
                  **{int(i): shown_name("campaign", n) for i, n in zip(campaigns["id"], campaigns["name"], strict=True)}}
campaign_id = right.selectbox(tr("import.campaign"), list(campaign_names), format_func=campaign_names.get,
                              key="import_campaign")

uploader_key = f"import_upload_{state.get('import_upload_round', 0)}"
# The browser refuses a larger file before sending it (and names the same limit); core checks it again.
uploaded = st.file_uploader(tr("import.upload", limit_mb=limit_mb), type=["csv", "tsv", "txt", "xlsx", "xlsm"],
                            key=uploader_key, max_upload_size=max(1, int(limit_mb)))
if uploaded is not None and state.get("import_file", {}).get("id") != uploaded.file_id:
    # Keep the bytes once: reruns (mapping edits, sheet choice) preview the same file without reading it again.
    state["import_file"] = {"id": uploaded.file_id, "name": uploaded.name, "data": uploaded.getvalue()}
    state.pop("import_mapping", None)
    state.pop("import_sheet", None)
file = state.get("import_file")


def _clear_file() -> None:
    for name in ("import_file", "import_mapping", "import_sheet", "import_busy", "import_preview"):
        state.pop(name, None)
    state["import_upload_round"] = state.get("import_upload_round", 0) + 1


# Labels resolved now, in this run's language: a format function must not read session state later.
FIELD_LABELS: dict[str | None, str] = {None: tr("import.mapping_keep"), IGNORE: tr(f"import.field.{IGNORE}"),
                                       **{name: tr(f"import.field.{name}") for name in FIELDS}}


if file:
    # A large file takes seconds to plan: the preview is kept until the file, channel, campaign, mapping or sheet
    # changes, so unrelated reruns (the undo form, the language) do not plan it again.
    wanted = (file["id"], int(channel_id), campaign_id, repr(state.get("import_mapping")), state.get("import_sheet"))
    cached = state.get("import_preview")
    shown = cached[1] if cached and cached[0] == wanted else None
    if shown is None:
        try:
            with db_session() as session:
                shown = preview(session=session, actor=actor, data=file["data"], filename=file["name"],
                                channel_id=int(channel_id), campaign_id=campaign_id,
                                mapping=state.get("import_mapping"), sheet=state.get("import_sheet"), now=utcnow())
        except LeadLoopError as error:
            show_error(error)
        else:
            state["import_preview"] = (wanted, shown)
    if shown is not None:
        if len(shown.sheets) > 1:
            sheet = st.selectbox(tr("import.sheet"), shown.sheets, index=shown.sheets.index(shown.sheet),
                                 key="import_sheet_pick")
            if sheet != shown.sheet:
                state["import_sheet"] = sheet
                state.pop("import_mapping", None)
                st.rerun()
        st.caption(tr("import.file_info", encoding=shown.encoding or "xlsx", header_line=shown.header_line,
                      rows=shown.counts["rows"]))
        if shown.kind == "touchpoints":
            st.info(tr("import.kind_info"))

        # Mapping: one selectbox per column, applied together.
        options: list[str | None] = [None, *FIELDS, IGNORE]
        with st.form("import_mapping_form"):
            st.markdown(f"**{tr('import.mapping')}**")
            picked: dict[str, str | None] = {}
            grid = st.columns(3)
            for position, column in enumerate(shown.columns):
                current = shown.mapping.get(column)
                picked[column] = grid[position % 3].selectbox(
                    column, options, index=options.index(current) if current in options else 0,
                    format_func=FIELD_LABELS.get, key=f"import_map_{position}")
            if st.form_submit_button(tr("import.apply_mapping")):
                state["import_mapping"] = picked
                st.rerun()

        st.markdown(f"**{tr('import.counts')}**")
        names = ["inserted", "updated", "duplicates_in_file", "owned_by_sales", "invalid", "touchpoints"]
        if shown.counts.get("skipped"):
            names.append("skipped")
        for box, name in zip(st.columns(len(names)), names, strict=True):
            box.metric(tr(f"import.count.{name}"), f"{shown.counts.get(name, 0):,}")

        st.markdown(f"**{tr('import.preview')}**")
        sample = shown.sample.copy()
        sample["occurred_at"] = pd.to_datetime(sample["occurred_at"], utc=True)
        st.dataframe(for_display(sample, values={"outcome": "import.outcome"}, times=("occurred_at",)),
                     hide_index=True, width="stretch")

        st.markdown(f"**{tr('import.problems')}** ({len(shown.problems):,})")
        if shown.problems.empty:
            st.caption(tr("import.no_problems"))
        else:
            report = shown.problems.rename(columns={c: tr(f"import.report.{c}") for c in shown.problems.columns})
            st.dataframe(report.head(200), hide_index=True, width="stretch")
            st.download_button(tr("import.download_problems"), problem_report_csv(shown.problems, lang()),
                               file_name="import-problems.csv", mime="text/csv", key="import_preview_problems",
                               icon=":material/download:")

        force = False
        if shown.already_imported_batch_id is not None:
            st.warning(tr("import.already_imported", batch_id=shown.already_imported_batch_id))
            force = st.checkbox(tr("import.force"), key="import_force")
        busy = state.get("import_busy", False)
        if st.button(tr("import.confirm"), type="primary", key="import_confirm", disabled=busy):
            state["import_busy"] = True  # a second click while this run works does nothing
            bar = st.progress(0.0, text=tr("import.running"))

            def report_progress(fraction: float, stage: str) -> None:
                bar.progress(min(max(fraction, 0.0), 1.0), text=tr(f"import.stage.{stage}"))

            try:
                with db_session() as session:
                    summary = run_import(session=session, actor=actor, data=file["data"], filename=file["name"],
                                         channel_id=int(channel_id), campaign_id=campaign_id,
                                         mapping=shown.mapping, sheet=shown.sheet, now=utcnow(), force=force,
                                         progress=report_progress)
            except LeadLoopError as error:
                state["import_busy"] = False
                show_error(error)
            else:
                state["import_summary"] = {**summary.as_dict(),
                                           "report_csv": problem_report_csv(summary.problem_report, lang())}
                _clear_file()
                st.rerun()

# ---------------------------------------------------------------------------------------------------------------
# Past batches, and undo
# ---------------------------------------------------------------------------------------------------------------
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
    committed = batches[batches["status"] == "committed"]
    if not committed.empty:
        with st.form("import_undo_form"):
            st.markdown(f"**{tr('import.undo')}**")
            labels = {int(r.id): f"#{r.id} · {r.filename} · {r.channel}" for r in committed.itertuples()}
            batch_id = st.selectbox(tr("import.undo_pick"), list(labels), format_func=labels.get, key="import_undo_id")
            sure = st.checkbox(tr("import.undo_confirm"), key="import_undo_sure")
            if st.form_submit_button(tr("import.undo"), type="secondary") and sure:
                try:
                    with db_session() as session:
                        result = undo_batch(session=session, actor=actor, batch_id=int(batch_id), now=utcnow())
                except LeadLoopError as error:
                    show_error(error)
                else:
                    state["flash"] = tr("import.undone", batch_id=batch_id, **result)
                    st.rerun()
