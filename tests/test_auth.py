"""Reviewer sign-in: passwords, accounts, modes, the write guard, the CLI and the Streamlit widgets."""
from __future__ import annotations

import io
import tomllib

import pandas as pd
import pytest
from streamlit.testing.v1 import AppTest

from bloodcell_core.cli import main as cli_main
from bloodcell_core.errors import BloodcellError
from bloodcell_core.paths import PROJECT_ROOT
from bloodcell_core.review import auth
from bloodcell_core.review.auth import (
    Account,
    AuthConfigError,
    authenticate,
    guarded_record,
    hash_password,
    load_accounts,
    oidc_configured,
    oidc_identity,
    oidc_providers,
    read_only_open,
    session_identity,
    sign_in_mode,
    unverified_identity,
    verify_password,
)
from bloodcell_core.review.store import Decision, ReviewStore
from dashboard import sign_in as sign_in_widgets

FAST_ROUNDS = 4  # bcrypt cost for test hashes; the app default is auth.BCRYPT_ROUNDS
ALICE_PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def alice_hash() -> str:
    return hash_password(ALICE_PASSWORD, rounds=FAST_ROUNDS)


@pytest.fixture
def password_secrets(alice_hash) -> dict:
    return {"reviewers": {
        "Alice": {"password_hash": alice_hash, "display_name": "Dr Alice"},
        "bob": {"password_hash": alice_hash, "display_name": "Bob", "role": "viewer"},
    }}


OIDC_AUTH = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "x" * 32,
             "client_id": "id", "client_secret": "secret",
             "server_metadata_url": "https://accounts.google.com/.well-known/openid-configuration"}


def keep_decision(reviewer: str = "typed free-text name") -> Decision:
    return Decision(image_hash="h1", dataset="pbc", path="pbc/h1.jpg", action="keep",
                    old_label="ig", new_label=None, reviewer=reviewer)


# -- passwords --------------------------------------------------------------------------------

def test_password_hashes_are_salted_bcrypt_and_verify(alice_hash):
    assert alice_hash.startswith("$2b$")
    assert hash_password(ALICE_PASSWORD, rounds=FAST_ROUNDS) != alice_hash  # a new salt each time
    assert verify_password(ALICE_PASSWORD, alice_hash)


@pytest.mark.parametrize("attempt", ["correct horse battery ", "Correct horse battery", "", "x" * 100])
def test_wrong_passwords_are_refused(alice_hash, attempt):
    assert not verify_password(attempt, alice_hash)


@pytest.mark.parametrize("bad_hash", ["", "plaintext", "$2b$12$tooshort", None])
def test_malformed_hashes_never_verify(bad_hash):
    assert not verify_password(ALICE_PASSWORD, bad_hash)


@pytest.mark.parametrize("password", ["", "é" * 40])
def test_unusable_passwords_cannot_be_hashed(password):
    with pytest.raises(BloodcellError):
        hash_password(password, rounds=FAST_ROUNDS)


# -- accounts ---------------------------------------------------------------------------------

def test_accounts_load_with_lower_case_names_and_defaults(alice_hash):
    accounts = load_accounts({"reviewers": {"Alice": {"password_hash": alice_hash, "display_name": "Dr Alice"},
                                            "carol": {"password_hash": alice_hash}}})
    assert set(accounts) == {"alice", "carol"}
    assert accounts["alice"] == Account("alice", "Dr Alice", alice_hash, "reviewer")
    assert accounts["carol"].display_name == "carol"
    assert alice_hash not in repr(accounts["alice"])
    assert load_accounts({}) == {}


@pytest.mark.parametrize(("reviewers", "message"), [
    ({"alice": {"password_hash": "plain-text-password"}}, "not a bcrypt hash"),
    ({"alice": {"password_hash": "HASH", "role": "admin"}}, "role"),
    ({"alice": {"password_hash": "HASH"}, "ALICE": {"password_hash": "HASH"}}, "twice"),
    ({"unverified:alice": {"password_hash": "HASH"}}, "usernames use"),
    ({"alice": "HASH"}, "must be a table"),
])
def test_bad_account_configuration_is_refused(alice_hash, reviewers, message):
    reviewers = {name: ({k: v.replace("HASH", alice_hash) for k, v in entry.items()} if isinstance(entry, dict)
                        else entry) for name, entry in reviewers.items()}
    with pytest.raises(AuthConfigError, match=message):
        load_accounts({"reviewers": reviewers})


def test_authenticate_accepts_only_the_right_password(password_secrets):
    accounts = load_accounts(password_secrets)
    assert authenticate(accounts, "alice", ALICE_PASSWORD).username == "alice"
    assert authenticate(accounts, "  ALICE ", ALICE_PASSWORD).username == "alice"
    assert authenticate(accounts, "alice", "wrong password") is None
    assert authenticate(accounts, "alice", "") is None
    assert authenticate(accounts, "mallory", ALICE_PASSWORD) is None


# -- modes and configuration -----------------------------------------------------------------

def test_oidc_providers_follow_st_login_configuration():
    assert oidc_providers({}) == []
    assert oidc_providers({"auth": OIDC_AUTH}) == ["default"]
    shared = {key: OIDC_AUTH[key] for key in ("redirect_uri", "cookie_secret")}
    provider = {key: OIDC_AUTH[key] for key in ("client_id", "client_secret", "server_metadata_url")}
    named = {"auth": {**shared, "google": provider, "microsoft": provider}}
    assert oidc_providers(named) == ["google", "microsoft"]
    assert oidc_configured(named)


@pytest.mark.parametrize(("auth_section", "message"), [
    ({"client_id": "id"}, "redirect_uri, cookie_secret"),
    ({"redirect_uri": "http://x/oauth2callback", "cookie_secret": "s"}, "names no provider"),
    ({"redirect_uri": "http://x/oauth2callback", "cookie_secret": "s", "client_id": "id"}, "client_secret"),
    ({"redirect_uri": "http://x/oauth2callback", "cookie_secret": "s", "okta": {"client_id": "id"}}, r"\[auth.okta\]"),
])
def test_half_configured_oidc_is_an_error_not_a_silent_fallback(auth_section, message):
    with pytest.raises(AuthConfigError, match=message):
        oidc_configured({"auth": auth_section})


def test_sign_in_mode_precedence(password_secrets):
    unverified = {"access": {"allow_unverified_names": True}}
    assert sign_in_mode({}) == "closed"
    assert sign_in_mode({"access": {"allow_unverified_names": False}}) == "closed"
    assert sign_in_mode(unverified) == "unverified"
    assert sign_in_mode({**password_secrets, **unverified}) == "password"  # the dev flag can't weaken accounts
    assert sign_in_mode({**password_secrets, "auth": OIDC_AUTH}) == "oidc"


def test_read_only_viewing_defaults_and_settings(password_secrets):
    assert read_only_open({}) is True
    assert read_only_open({"access": {"allow_unverified_names": True}}) is True
    assert read_only_open(password_secrets) is False
    assert read_only_open({"auth": OIDC_AUTH}) is False
    assert read_only_open({**password_secrets, "access": {"read_only_open": True}}) is True
    assert read_only_open({"access": {"read_only_open": False}}) is False
    with pytest.raises(AuthConfigError, match="true or false"):
        read_only_open({"access": {"read_only_open": "yes"}})


def test_unverified_names_are_marked_and_cleaned():
    assert unverified_identity("  Dr   Who ") == "unverified:Dr Who"
    assert unverified_identity("Dr\nWho\x00") == "unverified:Dr Who"  # control characters become spaces
    assert unverified_identity("   ") is None
    assert len(unverified_identity("x" * 500)) == len("unverified:") + 64


def test_oidc_identity_needs_a_logged_in_user_and_respects_the_allow_list():
    secrets = {"auth": OIDC_AUTH}
    alice = {"is_logged_in": True, "email": "Alice@Hospital.org", "name": "Alice", "sub": "123"}
    assert oidc_identity(alice, secrets).name == "alice@hospital.org"
    assert oidc_identity(alice, secrets).display_name == "Alice"
    assert oidc_identity({"email": "test@example.com"}, secrets) is None  # an e-mail alone is not a login
    assert oidc_identity({**alice, "is_logged_in": False}, secrets) is None
    assert oidc_identity({"is_logged_in": True, "sub": "abc"}, secrets).name == "oidc:abc"
    by_domain = {**secrets, "access": {"oidc_allowed": ["@hospital.org"]}}
    by_address = {**secrets, "access": {"oidc_allowed": ["bob@clinic.org"]}}
    assert oidc_identity(alice, by_domain) is not None
    assert oidc_identity(alice, by_address) is None
    assert oidc_identity({"is_logged_in": True, "sub": "abc"}, by_domain) is None


def test_session_identity_ignores_stale_or_foreign_sessions(password_secrets):
    signed_in = {auth.SESSION_USER_KEY: "alice", auth.SESSION_MODE_KEY: "password"}
    identity = session_identity(password_secrets, signed_in)
    assert (identity.name, identity.display_name, identity.may_record) == ("alice", "Dr Alice", True)
    viewer = session_identity(password_secrets, {**signed_in, auth.SESSION_USER_KEY: "bob"})
    assert viewer.may_record is False
    assert session_identity(password_secrets, {}) is None
    assert session_identity(password_secrets, {**signed_in, auth.SESSION_USER_KEY: "removed"}) is None
    unverified_session = {auth.SESSION_USER_KEY: "unverified:alice", auth.SESSION_MODE_KEY: "unverified"}
    assert session_identity(password_secrets, unverified_session) is None  # accounts configured since
    assert session_identity({"access": {"allow_unverified_names": True}}, unverified_session).name == "unverified:alice"


# -- the write guard --------------------------------------------------------------------------

@pytest.mark.parametrize("reviewer", [None, "", "   "])
def test_no_write_without_sign_in(review_store, reviewer):
    with pytest.raises(BloodcellError, match="sign in to record decisions"):
        guarded_record(review_store, keep_decision(), reviewer)
    assert review_store.count() == 0


def test_the_signed_in_identity_is_stored_not_the_typed_name(review_store):
    assert guarded_record(review_store, keep_decision("someone else"), "alice")
    assert review_store.latest()["h1"].reviewer == "alice"
    assert list(review_store.history()["reviewer"]) == ["alice"]


# -- shipped example and CLI ------------------------------------------------------------------

def test_the_example_secrets_work_with_the_documented_demo_password():
    secrets = tomllib.loads((PROJECT_ROOT / ".streamlit" / "secrets.toml.example").read_text())
    assert sign_in_mode(secrets) == "password"
    assert read_only_open(secrets) is False
    accounts = load_accounts(secrets)
    assert authenticate(accounts, "demo", "bloodcell-demo").display_name == "Demo Reviewer"
    assert authenticate(accounts, "demo", "wrong") is None


def test_hash_password_command_prints_a_working_account(monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("s3cret pass\n"))
    assert cli_main(["hash-password", "--stdin", "--username", "Carol", "--display-name", 'Dr "C"']) == 0
    output = capsys.readouterr().out
    password_hash = output.splitlines()[0]
    assert verify_password("s3cret pass", password_hash)
    snippet = output.split("# add to .streamlit/secrets.toml:")[1]
    account = authenticate(load_accounts(tomllib.loads(snippet)), "carol", "s3cret pass")
    assert account is not None and account.display_name == 'Dr "C"'


def test_hash_password_command_refuses_an_empty_password(monkeypatch, capsys):
    monkeypatch.setattr("sys.stdin", io.StringIO("\n"))
    assert cli_main(["hash-password", "--stdin"]) == 2
    assert "error: the password is empty" in capsys.readouterr().err


def test_review_export_command_writes_the_history(monkeypatch, tmp_path):
    monkeypatch.delenv("BLOODCELL_DB_URL", raising=False)
    monkeypatch.setenv("BLOODCELL_DB", str(tmp_path / "review.sqlite"))
    with ReviewStore() as store:
        guarded_record(store, keep_decision(), "alice")
        guarded_record(store, Decision("h2", "pbc", "p.jpg", "drop", None, None, ""), "bob")
    out = tmp_path / "export" / "decisions.csv"
    assert cli_main(["review-export", "--out", str(out), "--reviewer", "bob"]) == 0
    exported = pd.read_csv(out)
    assert list(exported["image_hash"]) == ["h2"] and list(exported["reviewer"]) == ["bob"]


# -- Streamlit widgets (AppTest runs the real page code) ----------------------------------------

PAGE = """
import streamlit as st
from bloodcell_core.errors import BloodcellError
from bloodcell_core.review.auth import guarded_record
from bloodcell_core.review.store import Decision, ReviewStore
from dashboard.sign_in import require_reviewer

reviewer = require_reviewer()
st.text(f"reviewer={reviewer}")
if st.button("Keep", key="keep"):
    try:
        guarded_record(ReviewStore(), Decision("h1", "pbc", "p.jpg", "keep", None, None, "typed name"), reviewer)
        st.success("recorded")
    except BloodcellError as error:
        st.error(str(error))
"""


@pytest.fixture
def page(monkeypatch, tmp_path):
    monkeypatch.delenv("BLOODCELL_DB_URL", raising=False)
    monkeypatch.setenv("BLOODCELL_DB", str(tmp_path / "review.sqlite"))
    monkeypatch.setenv("BLOODCELL_DATA_DIR", str(tmp_path / "data"))  # session records for reloads

    def make(secrets: dict) -> AppTest:
        app = AppTest.from_string(PAGE, default_timeout=60)
        app.secrets.update(secrets)
        return app.run()

    return make


def shown_reviewer(app: AppTest) -> str:
    return next(t.value for t in app.text if t.value.startswith("reviewer="))


def recorded_reviewers(tmp_path) -> list[str]:
    with ReviewStore(f"sqlite:///{tmp_path / 'review.sqlite'}") as store:
        return list(store.history()["reviewer"])


def sign_in(app: AppTest, username: str, password: str) -> AppTest:
    app.sidebar.text_input(key="bloodcell-sign-in-username").input(username)
    app.sidebar.text_input(key="bloodcell-sign-in-password").input(password)
    return next(b for b in app.sidebar.button if b.label == "Sign in").click().run()


def test_page_refuses_a_wrong_password_and_writes_nothing(page, password_secrets, tmp_path):
    app = sign_in(page(password_secrets), "alice", "not her password")
    assert any("Wrong username or password" in e.value for e in app.sidebar.error)
    assert shown_reviewer(app) == "reviewer=None"
    app.button(key="keep").click().run()
    assert [e.value for e in app.main.error] == ["sign in to record decisions"]
    assert recorded_reviewers(tmp_path) == []


def test_page_records_the_signed_in_username_and_signs_out(page, password_secrets, tmp_path):
    app = sign_in(page(password_secrets), "Alice", ALICE_PASSWORD)
    assert shown_reviewer(app) == "reviewer=alice"
    assert [t.value for t in app.sidebar.text] == ["Signed in as Dr Alice"]
    app.button(key="keep").click().run()
    assert [s.value for s in app.success] == ["recorded"]
    assert recorded_reviewers(tmp_path) == ["alice"]
    app.sidebar.button(key="bloodcell-sign-out").click().run()
    assert shown_reviewer(app) == "reviewer=None"


def test_page_viewer_role_cannot_record(page, password_secrets, tmp_path):
    app = sign_in(page(password_secrets), "bob", ALICE_PASSWORD)
    assert shown_reviewer(app) == "reviewer=None"
    assert any("may view but not record" in i.value for i in app.info)
    app.button(key="keep").click().run()
    assert recorded_reviewers(tmp_path) == []


def test_page_without_sign_in_configured_explains_how(page, tmp_path):
    app = page({"access": {"allow_unverified_names": False}})
    assert shown_reviewer(app) == "reviewer=None"
    assert any("hash-password" in i.value for i in app.info)
    app.button(key="keep").click().run()
    assert recorded_reviewers(tmp_path) == []


def test_page_dev_mode_records_a_marked_unverified_name(page, tmp_path):
    app = page({"access": {"allow_unverified_names": True}})
    app.sidebar.text_input(key="bloodcell-sign-in-name").input("Dr Who")
    next(b for b in app.sidebar.button if b.label == "Start reviewing").click().run()
    assert shown_reviewer(app) == "reviewer=unverified:Dr Who"
    app.button(key="keep").click().run()
    assert recorded_reviewers(tmp_path) == ["unverified:Dr Who"]


def test_page_with_oidc_records_the_provider_email(page, tmp_path):
    app = AppTest.from_string(PAGE, default_timeout=60)
    app.secrets["auth"] = OIDC_AUTH
    app.user = {"is_logged_in": True, "email": "Alice@Hospital.org", "name": "Alice"}
    app.run()
    assert shown_reviewer(app) == "reviewer=alice@hospital.org"
    app.button(key="keep").click().run()
    assert recorded_reviewers(tmp_path) == ["alice@hospital.org"]


@pytest.mark.parametrize("installed", [True, False])
def test_page_with_oidc_offers_st_login_when_signed_out(page, tmp_path, monkeypatch, installed):
    monkeypatch.setattr(sign_in_widgets, "authlib_installed", lambda: installed)
    app = AppTest.from_string(PAGE, default_timeout=60)
    app.secrets["auth"] = OIDC_AUTH
    app.secrets["reviewers"] = {"alice": {"password_hash": hash_password("pw", rounds=FAST_ROUNDS)}}
    app.user = {"is_logged_in": False}
    app.run()
    assert shown_reviewer(app) == "reviewer=None"
    assert not any(t.key == "bloodcell-sign-in-password" for t in app.sidebar.text_input)  # OIDC replaces passwords
    if installed:
        assert [b.label for b in app.sidebar.button] == ["Sign in"]
    else:
        assert any("Authlib" in e.value for e in app.sidebar.error)


def test_page_shows_a_configuration_error_instead_of_crashing(page):
    app = page({"reviewers": {"alice": {"password_hash": "not-a-hash"}}})
    assert not app.exception
    assert any("not a bcrypt hash" in e.value for e in app.sidebar.error)
    assert shown_reviewer(app) == "reviewer=None"
