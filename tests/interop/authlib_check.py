"""A relying party built on Authlib (requests integration) against a running Latchkey.

Authorization code flow with PKCE S256 through OAuth2Session, the ID token verified against
the JWKS and its claims validated with Authlib's OIDC rules (CodeIDToken: iss, aud, exp, iat,
nonce, at_hash), then userinfo and a refresh. The sign-in is plain HTTP with a requests
session as the browser. The JWS layer is joserfc, which Authlib depends on and uses itself
for ID tokens (authlib.integrations.base_client.OpenIDMixin.parse_id_token) since
authlib.jose was deprecated.

Environment: ISSUER, RP_CLIENT_ID, RP_CLIENT_SECRET, RP_REDIRECT_URI, USERNAME, PASSWORD.
Prints `ok ...` / `FAIL ...` lines and exits 1 if anything failed.
"""

from __future__ import annotations

import os
import secrets
import sys
from html.parser import HTMLParser
from urllib.parse import parse_qs, urljoin, urlsplit

import requests
from authlib.integrations.requests_client import OAuth2Session
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import BadSignatureError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

TIMEOUT = 10
ISSUER = os.environ["ISSUER"]
CLIENT_ID = os.environ["RP_CLIENT_ID"]
CLIENT_SECRET = os.environ["RP_CLIENT_SECRET"]
REDIRECT_URI = os.environ["RP_REDIRECT_URI"]
USERNAME = os.environ["USERNAME"]
PASSWORD = os.environ["PASSWORD"]

passed = 0
failed = 0


class Stop(Exception):
    pass


def ok(what: str) -> None:
    global passed
    passed += 1
    print(f"ok {what}", flush=True)


def fail(what: str, why: object) -> None:
    global failed
    failed += 1
    msg = " ".join(f"{type(why).__name__}: {why}".split()) if isinstance(why, BaseException) else str(why)
    print(f"FAIL {what}: {msg}", flush=True)


def step(what: str, fn, show: bool = True):
    try:
        out = fn()
    except Exception as e:  # noqa: BLE001 - every failure is reported as a FAIL line
        fail(what, e)
        raise Stop from e
    ok(f"{what} ({out})" if show and isinstance(out, str) else what)
    return out


class Forms(HTMLParser):
    """Collects each <form>'s action and hidden inputs."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.forms.append({"action": a.get("action", ""), "fields": {}})
        elif tag == "input" and self.forms and (a.get("type") or "").lower() == "hidden" and a.get("name"):
            self.forms[-1]["fields"][a["name"]] = a.get("value") or ""


def find_form(html: str, action: str) -> dict | None:
    p = Forms()
    p.feed(html)
    return next((f for f in p.forms if f["action"] == action), None)


def excerpt(html: str) -> str:
    return " ".join(html.split())[:200]


def sign_in(browser: requests.Session, url: str) -> str:
    """Follows the authorization request on the issuer, signs in on the login form, and
    returns the redirect to the client (never fetched)."""
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(ISSUER))
    posted = False
    res = browser.get(url, allow_redirects=False, timeout=TIMEOUT)
    for _ in range(10):
        loc = res.headers.get("location")
        if res.is_redirect and loc:
            nxt = urljoin(res.url, loc)
            if not nxt.startswith(origin + "/"):
                return nxt
            res = browser.get(nxt, allow_redirects=False, timeout=TIMEOUT)
            continue
        form = find_form(res.text, "/login")
        if form is None or posted:
            raise AssertionError(f"expected the login form, got {res.status_code}: {excerpt(res.text)}")
        data = dict(form["fields"], username=USERNAME, password=PASSWORD)
        if not data.get("csrf") or "request" not in data:
            raise AssertionError("login form without csrf/request")
        res = browser.post(urljoin(origin, "/login"), data=data, allow_redirects=False, timeout=TIMEOUT)
        posted = True
    raise AssertionError("too many redirects")


def main() -> None:
    http = requests.Session()

    def discover():
        r = http.get(ISSUER + "/.well-known/openid-configuration", timeout=TIMEOUT)
        r.raise_for_status()
        m = r.json()
        assert m["issuer"] == ISSUER, f"issuer {m['issuer']}"
        assert "S256" in m.get("code_challenge_methods_supported", []), "no S256"
        return m

    meta = step("discovery", discover)

    session = OAuth2Session(
        CLIENT_ID,
        CLIENT_SECRET,
        scope="openid profile email offline_access",
        redirect_uri=REDIRECT_URI,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",
    )
    verifier = secrets.token_urlsafe(48)
    nonce = secrets.token_urlsafe(16)
    auth_url, state = session.create_authorization_url(
        meta["authorization_endpoint"], code_verifier=verifier, nonce=nonce
    )
    assert "code_challenge_method=S256" in auth_url

    browser = requests.Session()

    def redirect_back():
        cb = sign_in(browser, auth_url)
        q = parse_qs(urlsplit(cb).query)
        assert cb.split("?")[0] == REDIRECT_URI, f"redirected to {cb}"
        assert q.get("code"), f"no code in {cb}"
        # RFC 9207: the authorization response names its issuer.
        assert q.get("iss") == [ISSUER], f"iss {q.get('iss')}"
        return cb

    callback = step(
        "sign-in with a password over HTTP, redirected back with code, state and iss",
        redirect_back,
        show=False,
    )

    # fetch_token checks `state` against the session's and sends the code_verifier.
    token = step(
        "authorization code + PKCE S256 redeemed with OAuth2Session.fetch_token",
        lambda: session.fetch_token(
            meta["token_endpoint"],
            authorization_response=callback,
            code_verifier=verifier,
            timeout=TIMEOUT,
        ),
    )

    jwks = http.get(meta["jwks_uri"], timeout=TIMEOUT)
    jwks.raise_for_status()
    key_set = KeySet.import_key_set(jwks.json())
    registry = JWSRegistry(algorithms=meta["id_token_signing_alg_values_supported"])

    def id_token():
        decoded = jwt.decode(token["id_token"], key_set, registry=registry)
        claims = CodeIDToken(
            decoded.claims,
            decoded.header,
            {"iss": {"essential": True, "values": [ISSUER]}},
            {"nonce": nonce, "client_id": CLIENT_ID, "access_token": token["access_token"]},
        )
        claims.validate(leeway=5)
        return f"sub {claims['sub']}, kid {decoded.header['kid']}"

    step("ID token signature verified against the JWKS, claims validated (CodeIDToken)", id_token)
    sub = jwt.decode(token["id_token"], key_set, registry=registry).claims["sub"]

    def tampered():
        head, body, sig = token["id_token"].split(".")
        flipped = ("A" if sig[0] != "A" else "B") + sig[1:]
        try:
            jwt.decode(".".join([head, body, flipped]), key_set, registry=registry)
        except BadSignatureError:
            return None
        raise AssertionError("a tampered signature verified")

    step("an ID token with a tampered signature is rejected", tampered)

    def userinfo():
        r = session.get(meta["userinfo_endpoint"], timeout=TIMEOUT)
        r.raise_for_status()
        info = r.json()
        assert info["sub"] == sub, f"sub {info['sub']}"
        assert info.get("preferred_username") == USERNAME, f"preferred_username {info.get('preferred_username')}"
        return None

    step("userinfo with the access token (sub matches the ID token)", userinfo)

    def refresh():
        old = dict(token)
        new = session.refresh_token(meta["token_endpoint"], refresh_token=old["refresh_token"], timeout=TIMEOUT)
        assert new["access_token"] != old["access_token"], "same access token"
        assert new.get("refresh_token") and new["refresh_token"] != old["refresh_token"], "not rotated"
        if "id_token" in new:
            decoded = jwt.decode(new["id_token"], key_set, registry=registry)
            assert decoded.claims["sub"] == sub, "refreshed ID token has another sub"
        r = session.get(meta["userinfo_endpoint"], timeout=TIMEOUT)
        r.raise_for_status()
        assert r.json()["sub"] == sub
        return None

    step("refresh with OAuth2Session.refresh_token, userinfo with the new access token", refresh)


if __name__ == "__main__":
    try:
        main()
    except Stop:
        pass
    except Exception as e:  # noqa: BLE001
        fail("unexpected error", e)
    sys.exit(1 if failed else 0)
