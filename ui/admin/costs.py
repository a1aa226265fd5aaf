"""Admin → Costs: what each channel or campaign cost per month — entered one by one or imported from a file."""

from __future__ import annotations

from datetime import date

import streamlit as st

from core.auth import Actor
from core.channels import (
    CostImportError,
    cost_template,
    import_costs,
    list_campaigns,
    list_channels,
    list_costs,
    set_cost,
)
from core.errors import LeadLoopError
from core.export import to_csv_bytes
from ui.admin import act
from ui.common import db_session, for_display, lang, money, show_error, tr

PERMISSION = "manage_costs"


def render(actor: Actor) -> None:
    with db_session() as session:
        costs = list_costs(session=session)
        channels = list_channels(session=session)
        campaigns = list_campaigns(session=session)
    if not costs.empty:
        by_month = costs.groupby("month", as_index=False)["amount"].sum().sort_values("month", ascending=False)
        st.caption(tr("admin.costs.latest_month", month=str(by_month.iloc[0]["month"])[:7],
                      amount=money(by_month.iloc[0]["amount"])))
    shown = costs.assign(amount=costs["amount"].map(money))
    st.dataframe(for_display(shown, columns=["month", "channel", "campaign", "amount", "note"]),
                 hide_index=True, width="stretch")
    with st.form("set_cost", clear_on_submit=True):
        st.markdown(f"**{tr('admin.costs.set')}**")
        c1, c2, c3, c4 = st.columns(4)
        channel_id = c1.selectbox(tr("col.channel"), channels["id"].tolist(),
                                  format_func=lambda i: channels.set_index("id").loc[i, "name"])
        campaign_id = c2.selectbox(tr("col.campaign"), [None, *campaigns["id"].tolist()],
                                   format_func=lambda i: tr("admin.costs.whole_channel") if i is None
                                   else campaigns.set_index("id").loc[i, "name"])
        month = c3.date_input(tr("col.month"), value=date.today().replace(day=1))
        amount = c4.number_input(tr("col.amount"), min_value=0.0, step=1000.0)
        note = st.text_input(tr("col.note"))
        if st.form_submit_button(tr("admin.costs.set"), type="primary"):
            act(actor, set_cost, "admin.costs.saved", channel_id=int(channel_id), month=month, amount=amount,
                campaign_id=int(campaign_id) if campaign_id is not None else None, note=note)
    _import(actor)


# A year of monthly costs per campaign is a few hundred rows; nothing near this is a cost sheet.
COST_FILE_MB = 5


def _import(actor: Actor) -> None:
    """Upload a CSV/Excel of monthly costs; all rows are saved or none, with every problem listed."""
    st.markdown(f"**{tr('costs.import_title')}**")
    st.caption(tr("costs.import_help"))
    st.download_button(tr("costs.template"), to_csv_bytes(cost_template(lang())), file_name="costs-template.csv",
                       mime="text/csv", key="cost_template", icon=":material/download:")
    with st.form("import_costs", clear_on_submit=False):
        upload = st.file_uploader(tr("costs.file"), type=["csv", "txt", "xlsx", "xlsm"], key="cost_file",
                                  max_upload_size=COST_FILE_MB)
        submitted = st.form_submit_button(tr("costs.import_button"), type="primary")
    if not submitted or upload is None:
        return
    try:
        with db_session() as session:
            summary = import_costs(session=session, actor=actor, data=upload.getvalue(), filename=upload.name)
    except CostImportError as error:
        show_error(error)
        st.markdown(f"**{tr('costs.problems_title')}**")
        problems = error.localized_problems(lang())
        st.dataframe(for_display(problems), hide_index=True, width="stretch")
        return
    except LeadLoopError as error:
        show_error(error)
        return
    st.session_state["flash"] = tr("costs.imported", rows=summary["rows"], inserted=summary["inserted"],
                                   updated=summary["updated"])
    st.rerun()
