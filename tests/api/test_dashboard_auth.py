"""Dashboard sign-in: sessions, CSRF, the reverse-proxy header, X-API-Key, and who sees what."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from tests.api.conftest import API_KEY, MON, NOW, make_settings
from tests.support.harness import Harness, make_cadence, prospect
from touchflow import bootstrap
from touchflow.domain.access import Viewer
from touchflow.entrypoints.api import create_app
from touchflow.services.users import add_user, remove_user

PASSWORD = "correct horse battery"
ANA, BEN, MGR, ADMIN = "ana@x.example", "ben@x.example", "mgr@x.example", "admin@x.example"


@dataclass
class Dash:
    engine: Engine
    harness: Harness
    client: TestClient
    settings: Any


def _dash(engine: Engine, tmp_path: Path, **settings: Any) -> Dash:
    h = Harness(engine, make_cadence(tmp_path))
    h.add([prospect("ann@acme.example"), prospect("bob@acme.example")], MON, owner=ANA)
    h.add([prospect("cy@globex.example")], MON, owner=BEN)
    assert h.tick(MON).sent == 3
    for email, role, manager in (
        (ADMIN, "admin", None),
        (MGR, "manager", None),
        (ANA, "rep", MGR),
        (BEN, "rep", None),
    ):
        add_user(engine, email, role, NOW, manager=manager, password=PASSWORD)
    where = {"cadences_dir": tmp_path, "config_dir": tmp_path / "no-config"}
    s = make_settings(**{**where, **settings})
    app = create_app(s, engine=engine, runtimes=h.runtimes, clock=lambda: NOW)
    return Dash(engine, h, TestClient(app, follow_redirects=False), s)


@pytest.fixture
def dash(db: Engine, tmp_path: Path) -> Iterator[Dash]:
    d = _dash(db, tmp_path)
    with d.client:
        yield d


def _token(html: str) -> str:
    m = re.search(r'name="csrf_token" value="([0-9a-f]+)"', html)
    assert m, html
    return m.group(1)


def sign_in(client: TestClient, email: str, password: str = PASSWORD) -> Any:
    form = client.get("/signin")
    assert form.status_code == 200
    return client.post(
        "/signin",
        data={"email": email, "password": password, "csrf_token": _token(form.text)},
    )


def test_nobody_unauthenticated_sees_anything(dash: Dash) -> None:
    page = dash.client.get("/dashboard?period=7")
    assert page.status_code == 303
    assert page.headers["location"] == "/signin?next=%2Fdashboard%3Fperiod%3D7"
    for path in ("/api/dashboard/activity", "/live/stream"):
        r = dash.client.get(path)
        assert r.status_code == 401
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["code"] == "not_signed_in"


def test_sign_in_sets_a_hardened_session_cookie_and_shows_the_dashboard(dash: Dash) -> None:
    wrong = sign_in(dash.client, ANA, "not the password")
    assert wrong.status_code == 401 and "Wrong email or password" in wrong.text
    unknown = sign_in(dash.client, "nobody@x.example")
    assert unknown.status_code == 401
    ok = sign_in(dash.client, "  ANA@x.example ")
    assert ok.status_code == 303 and ok.headers["location"] == "/dashboard"
    cookie = ok.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
    page = dash.client.get("/dashboard")
    assert page.status_code == 200
    assert ANA in page.text and "/static/vendor/chart.umd.min.js" in page.text
    for section in ("cadences", "team", "deliverability", "pipeline", "accounts"):
        assert f'href="/dashboard/{section}?' in page.text  # every section is built


def test_repeated_failed_sign_ins_are_throttled_per_email_then_per_address(
    db: Engine, tmp_path: Path
) -> None:
    auth = {"signin_failures_per_email": 3, "signin_failures_per_address": 5}
    d = _dash(db, tmp_path, auth=auth)
    with d.client:
        for _ in range(3):
            assert sign_in(d.client, ANA, "guess").status_code == 401
        locked = sign_in(d.client, "Ana@x.example")  # even the right password, any spelling
        assert locked.status_code == 429, locked.text
        assert "Too many failed sign-ins. Try again in 15 minutes." in locked.text
        assert 890 <= int(locked.headers["retry-after"]) <= 900
        assert d.client.get("/dashboard").status_code == 303  # not signed in
        # Another account from the same address still signs in, and a success does not
        # reset the address's count: two more failures (5 in all) lock the address.
        assert sign_in(d.client, BEN).status_code == 303
        other = TestClient(d.client.app, follow_redirects=False)  # same address, no session
        assert sign_in(other, MGR, "guess").status_code == 401
        assert sign_in(other, ADMIN, "guess").status_code == 401
        assert sign_in(other, ADMIN).status_code == 429


def test_a_successful_sign_in_clears_its_email_failures(dash: Dash) -> None:
    for _ in range(4):  # the default allows 5
        assert sign_in(dash.client, ANA, "guess").status_code == 401
    assert sign_in(dash.client, ANA).status_code == 303
    other = TestClient(dash.client.app, follow_redirects=False)
    for _ in range(4):
        assert sign_in(other, ANA, "guess").status_code == 401
    assert sign_in(other, ANA).status_code == 303


def test_cookie_is_secure_when_asked(db: Engine, tmp_path: Path) -> None:
    d = _dash(db, tmp_path)
    # Over https the cookie is Secure by itself (TOUCHFLOW_AUTH__COOKIE_SECURE forces it).
    with TestClient(d.client.app, base_url="https://testserver", follow_redirects=False) as c:
        assert "Secure" in sign_in(c, ANA).headers["set-cookie"]


def test_forged_posts_are_refused(dash: Dash) -> None:
    dash.client.get("/signin")
    no_token = dash.client.post("/signin", data={"email": ANA, "password": PASSWORD})
    assert no_token.status_code == 403
    # A token of another session (the attacker's own) is not this session's.
    other = TestClient(dash.client.app, follow_redirects=False)
    theirs = _token(other.get("/signin").text)
    forged = dash.client.post(
        "/signin", data={"email": ANA, "password": PASSWORD, "csrf_token": theirs}
    )
    assert forged.status_code == 403
    assert sign_in(dash.client, ANA).status_code == 303
    out = dash.client.post("/signout", data={"csrf_token": "0" * 64})
    assert out.status_code == 403
    assert dash.client.get("/dashboard").status_code == 200  # still signed in
    token = _token(dash.client.get("/dashboard").text)
    assert dash.client.post("/signout", data={"csrf_token": token}).status_code == 303
    assert dash.client.get("/dashboard").status_code == 303


def test_the_session_nonce_changes_at_sign_in(dash: Dash) -> None:
    before = _token(dash.client.get("/signin").text)
    sign_in(dash.client, ANA)
    after = _token(dash.client.get("/dashboard").text)
    assert before != after


def test_no_open_redirect_after_sign_in(dash: Dash) -> None:
    token = _token(dash.client.get("/signin").text)
    r = dash.client.post(
        "/signin",
        data={"email": ANA, "password": PASSWORD, "csrf_token": token, "next": "//evil.example/"},
    )
    assert r.headers["location"] == "/dashboard"


def test_a_tampered_or_expired_cookie_is_no_session(db: Engine, tmp_path: Path) -> None:
    d = _dash(db, tmp_path, auth={"session_max_age_s": 60})
    with d.client:
        sign_in(d.client, ANA)
        value = d.client.cookies["tf_session"]
        d.client.cookies.set("tf_session", value[:-2] + ("AA" if value[-2:] != "AA" else "BB"))
        assert d.client.get("/dashboard").status_code == 303


def test_a_removed_user_is_signed_out_at_the_next_request(dash: Dash) -> None:
    sign_in(dash.client, BEN)
    assert dash.client.get("/dashboard").status_code == 200
    assert remove_user(dash.engine, BEN)
    assert dash.client.get("/dashboard").status_code == 303


def test_json_routes_take_the_api_key(dash: Dash) -> None:
    r = dash.client.get("/api/dashboard/activity", headers={"X-API-Key": API_KEY})
    assert r.status_code == 200 and sum(r.json()["series"]["sent"]) == 3
    bad = dash.client.get("/api/dashboard/activity", headers={"X-API-Key": "wrong"})
    assert bad.status_code == 401
    # A wrong key is refused even with a valid session: never passed on to the cookie.
    sign_in(dash.client, ANA)
    assert dash.client.get("/api/dashboard/activity", headers={"X-API-Key": "x"}).status_code == 401


def _activity(client: TestClient, **params: str) -> dict[str, Any]:
    r = client.get("/api/dashboard/activity", params=params)
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


def test_reps_see_their_own_managers_their_team_admins_everyone(dash: Dash) -> None:
    dash.harness.exit_event("ann@acme.example", "reply", NOW - timedelta(minutes=5))
    dash.harness.exit_event("cy@globex.example", "reply", NOW - timedelta(minutes=4))
    seen: dict[str, tuple[list[str], int, int]] = {}
    for who in (ANA, BEN, MGR, ADMIN):
        client = TestClient(dash.client.app, follow_redirects=False)
        assert sign_in(client, who).status_code == 303
        data = _activity(client)
        seen[who] = (
            sorted(a["email"] for a in data["activity"]),
            sum(data["series"]["sent"]),
            sum(data["series"]["replies"]),
        )
    assert seen[ANA] == (["ann@acme.example"], 2, 1)
    assert seen[BEN] == (["cy@globex.example"], 1, 1)
    assert seen[MGR] == (["ann@acme.example"], 2, 1)  # ana reports to mgr; ben does not
    assert seen[ADMIN] == (["ann@acme.example", "cy@globex.example"], 3, 2)


def test_filters_narrow_but_never_widen(dash: Dash) -> None:
    dash.harness.exit_event("cy@globex.example", "reply", NOW - timedelta(minutes=4))
    sign_in(dash.client, ANA)
    # A rep asking for another rep's numbers gets nothing, not theirs.
    assert _activity(dash.client, owner=BEN)["activity"] == []
    assert sum(_activity(dash.client, owner=BEN)["series"]["sent"]) == 0
    admin = TestClient(dash.client.app, follow_redirects=False)
    sign_in(admin, ADMIN)
    assert sum(_activity(admin, owner=BEN)["series"]["sent"]) == 1
    assert sum(_activity(admin, cadence="no-such-cadence")["series"]["sent"]) == 0
    assert len(_activity(admin, period="7")["series"]["days"]) == 7
    page = admin.get("/dashboard", params={"owner": BEN, "period": "30"})
    assert page.status_code == 200
    assert f'<option value="{BEN}" selected>' in page.text
    assert '<option value="30" selected>' in page.text


def test_the_proxy_header_is_believed_only_from_trusted_proxies(db: Engine, tmp_path: Path) -> None:
    trusted = _dash(
        db, tmp_path, auth={"proxy_header": "X-Forwarded-Email", "trusted_proxies": ["testclient"]}
    )
    with trusted.client:
        ok = trusted.client.get("/dashboard", headers={"X-Forwarded-Email": BEN})
        assert ok.status_code == 200 and BEN in ok.text
        # Its forms carry a working CSRF token too (the page started a session nonce).
        token = re.search(r'<meta name="csrf-token" content="([0-9a-f]+)">', ok.text)
        assert token, ok.text
        headers = {"X-Forwarded-Email": BEN, "X-CSRF-Token": token.group(1)}
        assert trusted.client.post("/signout", headers=headers).status_code == 303
        forged = {"X-Forwarded-Email": BEN, "X-CSRF-Token": "0" * 64}
        assert trusted.client.post("/signout", headers=forged).status_code == 403
        # Not a user: no entry, whatever the proxy says.
        stranger = trusted.client.get("/dashboard", headers={"X-Forwarded-Email": "eve@x.example"})
        assert stranger.status_code == 303


def test_an_untrusted_peer_cannot_send_the_proxy_header(db: Engine, tmp_path: Path) -> None:
    d = _dash(db, tmp_path, auth={"proxy_header": "X-Forwarded-Email"})  # 127.0.0.1, ::1
    with d.client:
        r = d.client.get("/dashboard", headers={"X-Forwarded-Email": ADMIN})
        assert r.status_code == 303


def test_production_refuses_the_development_session_secret() -> None:
    prod = {
        "env": "production",
        "unsubscribe_secret": "own",
        "sender": {"email": "a@acme.example", "owner_email": "a@acme.example"},
        "unsubscribe_mailto": "u@acme.example",
        "database_url": "sqlite:///x.db",
    }
    report = bootstrap.startup_report(make_settings(**prod), "serve")
    assert any("TOUCHFLOW_AUTH__SESSION_SECRET" in r for r in report.refusals)
    ours = make_settings(**prod, auth={"session_secret": "a secret of our own"})
    assert not any("SESSION_SECRET" in r for r in bootstrap.startup_report(ours, "serve").refusals)


def test_viewer_narrowing() -> None:
    rep = Viewer(ANA, "rep", Viewer.team_of(ANA, "rep", [BEN]))
    assert rep.owners == frozenset({ANA})
    assert rep.narrowed([BEN]) == frozenset()
    assert not rep.can_see(None) and not rep.can_see(BEN) and rep.can_see(ANA)
    mgr = Viewer(MGR, "manager", Viewer.team_of(MGR, "manager", [ANA]))
    assert mgr.narrowed(None) == frozenset({MGR, ANA})
    admin = Viewer(ADMIN, "admin", Viewer.team_of(ADMIN, "admin", []))
    assert admin.can_see(None) and admin.narrowed([BEN]) == frozenset({BEN})
