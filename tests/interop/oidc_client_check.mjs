// A relying party built on openid-client (panva, OpenID Certified RP) against a running
// Latchkey: discovery, authorization code + PKCE S256 (state, nonce, RFC 9207 iss), ID
// token signatures checked against the JWKS by the library, userinfo, refresh, and
// RP-initiated logout. The sign-in is driven over plain HTTP (browser.mjs).
//
// Environment: ISSUER, RP_CLIENT_ID, RP_CLIENT_SECRET, RP_REDIRECT_URI,
// RP_POST_LOGOUT_REDIRECT_URI, USERNAME, PASSWORD. Prints `ok ...` / `FAIL ...` lines and
// exits 1 if anything failed.

import * as client from 'openid-client';
import { Browser, Report, env, excerpt, findForm } from './browser.mjs';

const ISSUER = env('ISSUER');
const REDIRECT_URI = env('RP_REDIRECT_URI');
const POST_LOGOUT = env('RP_POST_LOGOUT_REDIRECT_URI');
const USERNAME = env('USERNAME');
const PASSWORD = env('PASSWORD');
const SCOPE = 'openid profile email offline_access';

const r = new Report();

class Stop extends Error {}

// Runs one step; a failure is reported and stops the steps that depend on it.
async function step(what, fn) {
  try {
    const out = await fn();
    r.ok(typeof out === 'string' ? `${what} (${out})` : what);
    return out;
  } catch (e) {
    r.fail(what, e);
    throw new Stop();
  }
}

// Expects `fn` to be refused by the server with OAuth error `code`.
async function refused(what, code, fn) {
  try {
    await fn();
    r.fail(what, 'accepted');
  } catch (e) {
    if (e.error === code) r.ok(what);
    else r.fail(what, e);
  }
}

function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

// The authorization request in `browser`: signs in on the login form when it is shown
// and returns the redirect to the client (the callback URL, never fetched).
async function authorize(browser, url) {
  let res = await browser.follow(url);
  if (res.page !== undefined) {
    const login = findForm(res.page, '/login');
    assert(login, `expected the login form, got ${res.status}: ${excerpt(res.page)}`);
    assert(login.fields.csrf && 'request' in login.fields, 'login form without csrf/request');
    res = await browser.submit(login, { username: USERNAME, password: PASSWORD });
  }
  assert(res.redirect, `no redirect to the client after sign-in, got ${res.status}: ${excerpt(res.page ?? '')}`);
  return new URL(res.redirect);
}

async function run() {
  let config;
  try {
    config = await step('discovery', async () => {
      const c = await client.discovery(
        new URL(ISSUER),
        env('RP_CLIENT_ID'),
        undefined,
        client.ClientSecretBasic(env('RP_CLIENT_SECRET')),
        { execute: [client.allowInsecureRequests], timeout: 10 },
      );
      const m = c.serverMetadata();
      assert(m.issuer === ISSUER, `issuer ${m.issuer}`);
      assert(m.supportsPKCE('S256'), 'S256 not in code_challenge_methods_supported');
      assert(m.end_session_endpoint, 'no end_session_endpoint');
      assert(
        m.authorization_response_iss_parameter_supported === true,
        'RFC 9207 iss parameter not advertised',
      );
      return c;
    });
  } catch (e) {
    if (e instanceof Stop) return;
    throw e;
  }
  await flows(config);
}

async function flows(config) {
  // Verify the JWS signature of every ID token (and JWT response) against jwks_uri.
  client.enableNonRepudiationChecks(config);
  const browser = new Browser(ISSUER);

  const request = async (extra = {}) => {
    const pkceCodeVerifier = client.randomPKCECodeVerifier();
    const state = client.randomState();
    const nonce = client.randomNonce();
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: REDIRECT_URI,
      scope: SCOPE,
      code_challenge: await client.calculatePKCECodeChallenge(pkceCodeVerifier),
      code_challenge_method: 'S256',
      state,
      nonce,
      ...extra,
    });
    return { url, pkceCodeVerifier, state, nonce };
  };

  try {
    const first = await request();
    let callback;
    await step('sign-in with a password over HTTP, redirected back with code, state and iss', async () => {
      callback = await authorize(browser, first.url);
      assert(`${callback.origin}${callback.pathname}` === REDIRECT_URI, `redirected to ${callback.href}`);
      assert(callback.searchParams.get('code'), `no code in ${callback.href}`);
    });

    // The library validates state, iss (RFC 9207), the token response, PKCE is checked by
    // the server, and the ID token: signature against the JWKS, iss, aud, exp, iat, nonce.
    let tokens;
    await step('authorization code + PKCE S256 redeemed; ID token verified against the JWKS', async () => {
      tokens = await client.authorizationCodeGrant(config, callback, {
        pkceCodeVerifier: first.pkceCodeVerifier,
        expectedState: first.state,
        expectedNonce: first.nonce,
        idTokenExpected: true,
      });
      const claims = tokens.claims();
      assert(claims?.sub, 'no sub in the ID token');
      assert(claims.aud === env('RP_CLIENT_ID') || claims.aud?.includes?.(env('RP_CLIENT_ID')), 'aud');
      assert(tokens.access_token, 'no access token');
      return `sub ${claims.sub}`;
    });
    const sub = tokens.claims().sub;

    await step('userinfo with the access token (sub matches the ID token)', async () => {
      const info = await client.fetchUserInfo(config, tokens.access_token, sub);
      assert(info.sub === sub, `sub ${info.sub}`);
      assert(info.preferred_username === USERNAME, `preferred_username ${info.preferred_username}`);
      assert(info.email, 'no email claim for scope email');
    });

    let refreshed;
    await step('refresh: new access and refresh tokens, ID token (if any) verified', async () => {
      assert(tokens.refresh_token, 'no refresh token from the code grant');
      refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
      assert(refreshed.access_token && refreshed.access_token !== tokens.access_token, 'same access token');
      assert(refreshed.refresh_token && refreshed.refresh_token !== tokens.refresh_token, 'refresh token not rotated');
      if (refreshed.id_token) assert(refreshed.claims().sub === sub, 'refreshed ID token has another sub');
      return refreshed.id_token ? 'with an ID token' : 'no ID token';
    });
    await step('userinfo with the refreshed access token', async () => {
      const info = await client.fetchUserInfo(config, refreshed.access_token, sub);
      assert(info.sub === sub, `sub ${info.sub}`);
    });

    // A second authorization in the same browser: the session signs it in without a form.
    const second = await request();
    let cb2;
    await step('second authorization rides the browser session (no login form)', async () => {
      const res = await browser.follow(second.url);
      assert(res.redirect, `expected a redirect, got ${res.status}: ${excerpt(res.page ?? '')}`);
      cb2 = new URL(res.redirect);
      assert(cb2.searchParams.get('code'), `no code in ${cb2.href}`);
    });
    await refused('a wrong code_verifier is refused (RFC 7636 §4.6)', 'invalid_grant', () =>
      client.authorizationCodeGrant(config, cb2, {
        pkceCodeVerifier: client.randomPKCECodeVerifier(),
        expectedState: second.state,
        expectedNonce: second.nonce,
      }),
    );

    // A third code, redeemed twice: the second redemption is refused and, as RFC 6749
    // §4.1.2 recommends and Latchkey does, the tokens of the first one are revoked.
    const third = await request();
    await step('a code redeemed twice is refused and its first tokens revoked (RFC 6749 §4.1.2)', async () => {
      const res = await browser.follow(third.url);
      assert(res.redirect, `expected a redirect, got ${res.status}: ${excerpt(res.page ?? '')}`);
      const cb = new URL(res.redirect);
      const checks = { pkceCodeVerifier: third.pkceCodeVerifier, expectedState: third.state, expectedNonce: third.nonce };
      const once = await client.authorizationCodeGrant(config, cb, checks);
      try {
        await client.authorizationCodeGrant(config, cb, checks);
        throw new Error('the second redemption was accepted');
      } catch (e) {
        assert(e.error === 'invalid_grant', `second redemption: ${e.error ?? e.message}`);
      }
      try {
        await client.fetchUserInfo(config, once.access_token, client.skipSubjectCheck);
        throw new Error('the first access token still works');
      } catch (e) {
        assert(e.code === 'OAUTH_WWW_AUTHENTICATE_CHALLENGE', `userinfo: ${e.message}`);
      }
    });

    // RP-initiated logout: the end_session URL from the library, followed in the browser
    // that holds the session (a confirmation form is submitted if one is shown).
    const logoutState = client.randomState();
    await step('RP-initiated logout: back to post_logout_redirect_uri with state', async () => {
      const url = client.buildEndSessionUrl(config, {
        id_token_hint: refreshed.id_token ?? tokens.id_token,
        post_logout_redirect_uri: POST_LOGOUT,
        state: logoutState,
      });
      let res = await browser.follow(url.href);
      if (res.page !== undefined) {
        const confirm = findForm(res.page, '/logout');
        assert(confirm, `expected a redirect or a confirmation, got ${res.status}: ${excerpt(res.page)}`);
        res = await browser.submit(confirm, { confirm: 'yes' });
      }
      assert(res.redirect, `no redirect after logout, got ${res.status}: ${excerpt(res.page ?? '')}`);
      const back = new URL(res.redirect);
      assert(`${back.origin}${back.pathname}` === POST_LOGOUT, `redirected to ${back.href}`);
      assert(back.searchParams.get('state') === logoutState, `state ${back.searchParams.get('state')}`);
    });

    // The session in this browser is gone: prompt=none answers login_required.
    const silent = await request({ prompt: 'none' });
    await step('after logout, prompt=none answers login_required', async () => {
      const res = await browser.follow(silent.url);
      assert(res.redirect, `expected a redirect, got ${res.status}: ${excerpt(res.page ?? '')}`);
      const cb = new URL(res.redirect);
      try {
        await client.authorizationCodeGrant(config, cb, {
          pkceCodeVerifier: silent.pkceCodeVerifier,
          expectedState: silent.state,
          expectedNonce: silent.nonce,
        });
      } catch (e) {
        assert(e.error === 'login_required', `error ${e.error ?? e.message}`);
        return;
      }
      throw new Error('a code was issued after logout');
    });

    // OIDC Core §11: offline access is for when the user is not logged in, so the
    // offline_access refresh token outlives the logout (docs/configuration.md).
    await step('after logout, the offline_access refresh token still refreshes (OIDC Core §11)', async () => {
      const again = await client.refreshTokenGrant(config, refreshed.refresh_token);
      assert(again.access_token, 'no access token');
    });
  } catch (e) {
    if (!(e instanceof Stop)) r.fail('unexpected error', e);
  }
}

try {
  await run();
} catch (e) {
  r.fail('unexpected error', e);
}
process.exitCode = r.failed > 0 ? 1 : 0;
