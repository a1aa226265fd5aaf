"""The login gate, the role-based page map and every page rendering on the seeded database."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select, update
from sqlmodel import Session

from core.i18n import catalog, t
from db.engine import make_engine
from db.models import Lead, User
from tests.app.conftest import interface_texts, logged_in, new_app
from ui.navigation import PAGES

# A message key (``import.title``) shown as such means a translation is missing: t() falls back to the key.
_NAMESPACES = sorted({key.split(".")[0] for key in catalog("zh")}, key=len, reverse=True)
MESSAGE_KEY = re.compile(r"\b(?:" + "|".join(map(re.escape, _NAMESPACES)) + r")\.[a-z0-9_]+(?:\.[a-z0-9_]+)*\b")
CJK = re.compile(r"[\u4e00-\u9fff]")

EXPECTED_PAGES = {
    "admin": {"home", "inbox", "import", "dedup", "rules", "workflows", "journeys", "accounts", "reports", "admin"},
    "marketer": {"home", "import", "dedup", "rules", "workflows", "journeys", "accounts", "reports", "admin"},
    "manager": {"home", "inbox", "dedup", "rules", "journeys", "accounts", "reports", "admin"},  # rules: the MQL line
    "sales1": {"home", "inbox", "journeys"},
}


def test_login_page_is_all_a_stranger_sees(app_database):
    at = new_app()
    at.run()
    assert not at.exception
    assert at.text_input(key="login_username")
    for page in PAGES:
        with pytest.raises(ValueError):
            at.switch_page(page.path)


@pytest.mark.parametrize("password", ["wrong-pass1", ""])
def test_wrong_password_is_refused_without_hint(app_database, password):
    at = new_app()
    at.run()
    at.text_input(key="login_username").input("marketer")
    at.text_input(key="login_password").input(password)
    at.button[0].click()
    at.run()
    assert "actor" not in at.session_state
    assert at.error, "the user is told the sign-in failed"


def test_unknown_user_gets_the_same_message_as_a_wrong_password(app_database):
    messages = []
    for username in ("marketer", "nobody-here"):
        at = new_app()
        at.run()
        at.text_input(key="login_username").input(username)
        at.text_input(key="login_password").input("wrong-pass1")
        at.button[0].click()
        at.run()
        messages.append(at.error[0].value)
    assert messages[0] == messages[1]


@pytest.mark.parametrize("username", sorted(EXPECTED_PAGES))
def test_each_role_sees_exactly_its_pages(app_database, username):
    at = logged_in(username)
    reachable = set()
    for page in PAGES:
        try:
            at.switch_page(page.path)
        except ValueError:
            continue
        reachable.add(page.key)
    assert reachable == EXPECTED_PAGES[username]


@pytest.mark.parametrize("username", sorted(EXPECTED_PAGES))
@pytest.mark.parametrize("lang", ["zh", "en"])
def test_every_page_renders_for_every_role(app_database, username, lang):
    for page in PAGES:
        if page.key not in EXPECTED_PAGES[username]:
            continue
        # A fresh session per page: AppTest formats the previous page's choice widgets outside the script run,
        # where the session's language is unknown, so it cannot replay them across a language switch.
        at = logged_in(username, lang=lang)
        at.switch_page(page.path)
        at.run()
        assert not at.exception, (page.key, at.exception)
        assert not at.error, (page.key, [e.value for e in at.error])
        assert at.title[0].value, page.key
        # The page ran inside app.py's shell (login gate and sidebar), not as a lone script.
        assert at.sidebar.button(key="logout"), page.key
        untranslated = [text for text in interface_texts(at) if MESSAGE_KEY.search(text)]
        assert untranslated == [], f"message keys shown instead of text on {page.key}"
        if lang == "en":
            headings = [str(e.value) for name in ("title", "header", "subheader") for e in at.get(name)]
            buttons = [str(b.label) for b in at.button]
            own_name = at.session_state["actor"].display_name  # data: the demo users have Chinese names
            left = [text for text in headings + buttons if CJK.search(text.replace(own_name, ""))]
            assert left == [], f"Chinese left on {page.key}"


def test_home_shows_live_figures(app_database):
    at = logged_in("marketer")
    labels = {m.label: m.value for m in at.metric}
    assert int(labels[t("home.leads_total", "zh")].replace(",", "")) > 0
    assert at.dataframe, "recent imports are listed"


def test_logout_returns_to_the_login_page(app_database):
    at = logged_in("sales1")
    at.button(key="logout").click()
    at.run()
    assert "actor" not in at.session_state
    assert at.text_input(key="login_username")


def test_journeys_search_finds_a_lead_in_chinese(app_database):
    at = logged_in("marketer")
    at.switch_page("pages/journeys.py")
    at.run()
    at.text_input(key="journeys_query").input("张")
    at.run()
    assert not at.exception
    assert at.dataframe, "search results are shown"


def test_admin_creates_a_sales_rep_who_can_log_in(app_database):
    at = logged_in("admin")
    at.switch_page("pages/admin.py")
    at.run()
    form_inputs = [w for w in at.text_input if w.label == t("col.username", "zh")]
    form_inputs[0].input("rep_new")
    [w for w in at.text_input if w.label == t("admin.users.password", "zh")][0].input("Passw0rd99")
    [w for w in at.selectbox if w.label == t("col.role", "zh")][0].select("sales")
    [b for b in at.button if b.label == t("admin.users.create", "zh")][0].click()
    at.run()
    assert not at.exception
    assert not at.error, [e.value for e in at.error]
    assert at.success, "the admin is told the user was added"
    rep = logged_in("rep_new", "Passw0rd99")
    assert rep.session_state["actor"].role == "sales"


def test_a_login_older_than_the_session_limit_is_sent_back_to_the_login_page(app_database):
    at = logged_in("marketer")
    hours = 12  # the shipped default of security.session_hours
    at.session_state["login_at"] = at.session_state["login_at"] - timedelta(hours=hours, minutes=1)
    at.run()
    assert "actor" not in at.session_state
    assert any(t("login.expired", "zh") in i.value for i in at.info)
    assert at.text_input(key="login_username")


def test_a_user_deactivated_by_the_admin_is_signed_out_on_the_next_click(app_database):
    victim = logged_in("sales4")
    engine = make_engine(app_database)
    with Session(engine) as session:
        session.execute(update(User).where(User.username == "sales4").values(active=False))
        session.commit()
    try:
        victim.run()
        assert "actor" not in victim.session_state
        notice = t("login.deactivated", victim.session_state["lang"])  # in the rep's own language
        assert any(notice in i.value for i in victim.info), [i.value for i in victim.info]
    finally:
        with Session(engine) as session:
            session.execute(update(User).where(User.username == "sales4").values(active=True))
            session.commit()
        engine.dispose()


SSO_SECRETS = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "x" * 32,
               "client_id": "leadloop", "client_secret": "secret",
               "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration"}


def test_without_an_auth_section_there_is_no_single_sign_on_button(app_database):
    at = new_app()
    at.run()
    assert not [b for b in at.button if b.key == "sso_login"]


def test_single_sign_on_maps_the_provider_email_to_the_leadloop_user_and_role(app_database):
    at = new_app()
    at.secrets["auth"] = SSO_SECRETS
    at.run()
    assert [b for b in at.button if b.key == "sso_login"], "the login page offers single sign-on"
    at.user = {"is_logged_in": True, "email": "Manager@demo.leadloop.cn", "name": "Manager"}
    at.run()
    assert not at.exception
    actor = at.session_state["actor"]
    assert (actor.username, actor.role) == ("manager", "manager")


def test_single_sign_on_with_an_unknown_email_is_refused_with_a_clear_message(app_database):
    at = new_app()
    at.secrets["auth"] = SSO_SECRETS
    at.user = {"is_logged_in": True, "email": "stranger@example.com"}
    at.run()
    assert "actor" not in at.session_state
    assert any("stranger@example.com" in e.value for e in at.error)
    assert [b for b in at.button if b.key == "sso_logout"], "the user can switch to another account"


def test_an_unsubscribe_link_works_without_a_login_and_a_forged_one_is_refused(app_database):
    from core.unsubscribe import signing_secret, token_for

    engine = make_engine(app_database)
    with Session(engine) as session:
        lead = session.scalars(select(Lead).where(Lead.email.is_not(None), Lead.unsubscribed.is_(False))).first()
        secret = signing_secret(session)
        session.commit()
        lead_id = lead.id
    at = new_app()
    at.query_params["unsubscribe"] = token_for(secret, lead_id)
    at.run()
    assert not at.exception
    assert at.success and at.success[0].value == t("unsubscribe.done", "zh")
    assert "actor" not in at.session_state and not at.text_input, "no login form, no way in"
    forged = new_app()
    forged.query_params["unsubscribe"] = f"{lead_id}.{'0' * 32}"
    forged.run()
    assert forged.error and forged.error[0].value == t("unsubscribe.invalid", "zh")
    with Session(engine) as session:
        assert session.get(Lead, lead_id).unsubscribed
    engine.dispose()
