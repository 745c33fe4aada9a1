// The passkey journey in a real browser: Debian's headless Chromium (never a downloaded
// one) driven by playwright-core, with a virtual authenticator through the DevTools
// protocol (WebAuthn domain). One user signs in with a password, adds a passkey on the
// account page, signs out, signs in with the passkey alone through an authorization code
// flow with PKCE, and later, in a fresh browser holding the same credential, uses the
// passkey as the second factor after the password. Screenshots go to the output folder.
//
// Usage (each option may instead come from the environment variable in brackets):
//   node passkey_journey.mjs --base-url http://localhost:PORT [LATCHKEY_BASE_URL]
//     --client-id ID [LATCHKEY_CLIENT_ID] --client-secret SECRET [LATCHKEY_CLIENT_SECRET]
//     --redirect-uri https://client.example/cb [LATCHKEY_REDIRECT_URI]
//     --username NAME [LATCHKEY_USERNAME] --password PASSWORD [LATCHKEY_PASSWORD]
//     --out DIR [LATCHKEY_SCREENSHOTS]
//     [--chromium /usr/bin/chromium] [LATCHKEY_CHROMIUM]
//
// Prints `ok <step>` or `FAIL <step>: reason` per step and closes with `N passed, M failed`
// (plus `, K skipped` when a failure left later steps unrun); exits non-zero on failure.

import { createHash, randomBytes } from "node:crypto";
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { chromium } from "playwright-core";

const WAIT_MS = 15_000; // every single wait
const STEP_MS = 45_000; // a whole step, for the calls that have no wait of their own (CDP)
const WATCHDOG_MS = 170_000; // the whole journey (the Rust test waits 200 s for node)
const ACR_PHISHING_RESISTANT = "urn:latchkey:acr:phishing-resistant";
const PASSKEY_NAME = "Chromium virtual key";
const CHROMIUM_ARGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];
const WIDE = { width: 1000, height: 800 };
const NARROW = { width: 360, height: 800 };

// ---------------------------------------------------------------------------------------
// Options

function options(argv, env) {
  const names = {
    "base-url": "LATCHKEY_BASE_URL",
    "client-id": "LATCHKEY_CLIENT_ID",
    "client-secret": "LATCHKEY_CLIENT_SECRET",
    "redirect-uri": "LATCHKEY_REDIRECT_URI",
    username: "LATCHKEY_USERNAME",
    password: "LATCHKEY_PASSWORD",
    out: "LATCHKEY_SCREENSHOTS",
    chromium: "LATCHKEY_CHROMIUM",
  };
  const given = {};
  for (let i = 0; i < argv.length; i++) {
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(argv[i]);
    if (!m || !(m[1] in names)) throw new Error(`unknown argument ${argv[i]}`);
    given[m[1]] = m[2] !== undefined ? m[2] : argv[++i];
  }
  const opts = {};
  for (const [name, envName] of Object.entries(names)) {
    opts[name] = given[name] ?? env[envName];
  }
  opts.chromium ??= "/usr/bin/chromium";
  const missing = Object.keys(names).filter((n) => !opts[n]);
  if (missing.length) throw new Error(`missing --${missing.join(", --")}`);
  opts["base-url"] = opts["base-url"].replace(/\/$/, "");
  return opts;
}

// ---------------------------------------------------------------------------------------
// Steps and the closing line

const results = { passed: 0, failed: 0 };
const started = Date.now();
let current = "before the first step";

function elapsed() {
  return `${((Date.now() - started) / 1000).toFixed(1)} s`;
}

// Runs one step; a failure names the reason and, given the page, where it stands.
async function step(name, fn, page) {
  current = name;
  try {
    const value = await within(fn(), STEP_MS, `the step ${JSON.stringify(name)}`);
    results.passed++;
    console.log(`ok ${name} (at ${elapsed()})`);
    current = `after "${name}"`;
    return value;
  } catch (err) {
    results.failed++;
    let reason = String((err && err.message) || err).split("\n")[0];
    if (page && !(err instanceof PageStated)) reason += `; ${await whatThePageSays(page)}`;
    console.log(`FAIL ${name} (at ${elapsed()}): ${reason}`);
    throw new Stop();
  }
}

class Stop extends Error {}

// An error whose message already says where the page stands.
class PageStated extends Error {}

function check(cond, message) {
  if (!cond) throw new Error(message);
}

function within(promise, ms, what) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------------------------------
// OAuth: PKCE (RFC 7636 §4.1-4.2, S256), the authorization request, the token request

function base64url(buf) {
  return Buffer.from(buf).toString("base64url");
}

function newFlow(opts) {
  const verifier = base64url(randomBytes(32));
  const flow = {
    verifier,
    state: base64url(randomBytes(12)),
    nonce: base64url(randomBytes(12)),
  };
  const url = new URL(`${opts["base-url"]}/authorize`);
  url.search = new URLSearchParams({
    response_type: "code",
    client_id: opts["client-id"],
    redirect_uri: opts["redirect-uri"],
    scope: "openid",
    state: flow.state,
    nonce: flow.nonce,
    code_challenge: base64url(createHash("sha256").update(verifier).digest()),
    code_challenge_method: "S256",
  }).toString();
  flow.url = url.toString();
  return flow;
}

// RFC 9207 §2.4: the response carries `iss`; RFC 6749 §4.1.2: `state` comes back as sent.
function codeFrom(redirect, flow, opts) {
  const url = new URL(redirect);
  const params = url.searchParams;
  check(params.get("error") === null, `the client got error=${params.get("error")}`);
  check(params.get("state") === flow.state, "state does not match");
  check(params.get("iss") === opts["base-url"], `iss is ${params.get("iss")}`);
  const code = params.get("code");
  check(code, "no code in the redirect");
  return code;
}

// RFC 6749 §4.1.3 with client_secret_basic (§2.3.1: form-urlencode id and secret first).
async function redeem(code, flow, opts) {
  const id = encodeURIComponent(opts["client-id"]);
  const secret = encodeURIComponent(opts["client-secret"]);
  const res = await fetch(`${opts["base-url"]}/token`, {
    method: "POST",
    headers: {
      authorization: `Basic ${Buffer.from(`${id}:${secret}`).toString("base64")}`,
      "content-type": "application/x-www-form-urlencoded",
    },
    body: new URLSearchParams({
      grant_type: "authorization_code",
      code,
      redirect_uri: opts["redirect-uri"],
      code_verifier: flow.verifier,
    }).toString(),
    signal: AbortSignal.timeout(WAIT_MS),
  });
  const body = await res.json().catch(() => ({}));
  check(res.status === 200, `token endpoint said ${res.status} ${JSON.stringify(body)}`);
  check(body.id_token, "no id_token");
  // The signature is checked by the Rust tests; here only the claims matter.
  const claims = JSON.parse(Buffer.from(body.id_token.split(".")[1], "base64url").toString());
  check(claims.nonce === flow.nonce, "nonce does not match");
  check(claims.iss === opts["base-url"], `iss claim is ${claims.iss}`);
  return claims;
}

// ---------------------------------------------------------------------------------------
// The browser

// A page whose requests to the client's redirect URI never leave the browser (the host
// does not exist): the first one is captured and answered with a tiny page.
async function newPage(context, opts) {
  const page = await context.newPage();
  page.setDefaultTimeout(WAIT_MS);
  page.setDefaultNavigationTimeout(WAIT_MS);
  page.problems = [];
  page.on("pageerror", (err) => page.problems.push(`script error: ${err.message}`));
  page.on("console", (msg) => {
    if (msg.type() === "error") page.problems.push(`console: ${msg.text()}`);
  });
  const client = new URL(opts["redirect-uri"]);
  page.redirects = [];
  await page.route(`${client.origin}/**`, (route) => {
    page.redirects.push(route.request().url());
    return route.fulfill({
      status: 200,
      contentType: "text/html",
      body: "<!doctype html><title>client</title><p>Back at the client.</p>",
    });
  });
  return page;
}

// The next request the browser makes to the redirect URI.
async function redirectOf(page, opts) {
  const uri = opts["redirect-uri"];
  const seen = () => page.redirects.find((u) => u.startsWith(uri));
  try {
    await within(
      (async () => {
        while (!seen()) await new Promise((r) => setTimeout(r, 50));
      })(),
      WAIT_MS,
      `a redirect to ${uri}`,
    );
  } catch (err) {
    throw new PageStated(`${err.message}; ${await whatThePageSays(page)}`);
  }
  const url = seen();
  page.redirects.length = 0;
  return url;
}

// The page's address, the error it shows and any script problems: for failure messages.
async function whatThePageSays(page) {
  const shown = await page
    .locator(".error:visible")
    .allTextContents()
    .catch(() => []);
  const parts = [`the page is at ${new URL(page.url()).pathname}`];
  if (page.redirects.length) parts.push(`the client got ${page.redirects.join(" ")}`);
  if (shown.length) parts.push(`it says ${JSON.stringify(shown.join(" "))}`);
  if (page.problems.length) parts.push(page.problems.join("; "));
  return parts.join("; ");
}

// WebAuthn through the DevTools protocol: a platform authenticator that holds discoverable
// credentials, verifies the user and answers without a touch.
async function virtualAuthenticator(context, page) {
  const cdp = await context.newCDPSession(page);
  await cdp.send("WebAuthn.enable", { enableUI: false });
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2",
      transport: "internal",
      hasResidentKey: true,
      hasUserVerification: true,
      isUserVerified: true,
      automaticPresenceSimulation: true,
    },
  });
  return { cdp, authenticatorId };
}

// Whether the authenticator answers by itself. Off, it stands for a user who has not
// picked the passkey from the browser's autofill: the login page's conditional-mediation
// request then waits, as it does in front of a person, until the page is left or the
// passkey button replaces it.
async function presence(auth, enabled) {
  await auth.cdp.send("WebAuthn.setAutomaticPresenceSimulation", {
    authenticatorId: auth.authenticatorId,
    enabled,
  });
}

async function credentials(auth) {
  const { credentials } = await auth.cdp.send("WebAuthn.getCredentials", {
    authenticatorId: auth.authenticatorId,
  });
  return credentials;
}

async function shot(page, out, name, viewport = WIDE, fullPage = false) {
  const before = page.viewportSize();
  if (before.width !== viewport.width || before.height !== viewport.height) {
    await page.setViewportSize(viewport);
  }
  await page.screenshot({ path: join(out, name), fullPage, animations: "disabled" });
  if (before.width !== viewport.width || before.height !== viewport.height) {
    await page.setViewportSize(before);
  }
}

// A human waits for the page to settle before pressing a button; so does the test (the
// login page starts a conditional-mediation ceremony of its own as it loads).
async function settled(page) {
  await page.waitForLoadState("networkidle", { timeout: WAIT_MS });
}

async function submitPassword(page, opts) {
  await page.fill("#username", opts.username);
  await page.fill("#password", opts.password);
  await page.click('form[action="/login"] button[type="submit"]');
}

function noProblems(page) {
  check(page.problems.length === 0, page.problems.join("; "));
}

// ---------------------------------------------------------------------------------------
// The journey

async function journey(browser, opts) {
  const base = opts["base-url"];
  const out = opts.out;
  const context = await browser.newContext({ viewport: WIDE });
  const page = await newPage(context, opts);
  const auth = await virtualAuthenticator(context, page);

  await step("password sign-in to the account area", async () => {
    await page.goto(`${base}/login`);
    await page.locator("#passkey-signin").waitFor({ state: "visible" });
    await settled(page);
    await shot(page, out, "login.png");
    await shot(page, out, "login-360.png", NARROW);
    await page.setViewportSize(NARROW);
    const width = await page.evaluate(() => document.documentElement.scrollWidth);
    await page.setViewportSize(WIDE);
    check(width <= NARROW.width, `the page is ${width} px wide at ${NARROW.width} px`);
    await submitPassword(page, opts);
    await page.waitForURL(`${base}/account`);
    await page.locator("#passkey-register-form").waitFor({ state: "visible" });
  }, page);

  await step("register a passkey on the account page", async () => {
    await page.fill("#passkey-name", PASSKEY_NAME);
    await page.locator("#passkey-register-form").scrollIntoViewIfNeeded();
    await shot(page, out, "passkey-prompt.png");
    await page.click('#passkey-register-form button[type="submit"]');
    await page.waitForURL(`${base}/account?done=passkey_added`);
    const names = await page.locator("#passkeys-heading ~ ul.items li strong").allTextContents();
    check(names.includes(PASSKEY_NAME), `the list shows ${JSON.stringify(names)}`);
    const held = await credentials(auth);
    check(held.length === 1 && held[0].isResidentCredential, "no discoverable credential");
    await shot(page, out, "account.png", WIDE, true);
    noProblems(page);
  }, page);

  await step("sign out", async () => {
    await page.goto(`${base}/logout`);
    await page.click('button[name="confirm"][value="yes"]');
    await page.getByRole("heading", { name: "You are signed out" }).waitFor();
    const cookies = await context.cookies(base);
    check(!cookies.some((c) => c.name === "latchkey_session"), "the session cookie is still set");
  }, page);

  const alone = newFlow(opts);
  const code = await step("sign in with the passkey alone (no username, no password)", async () => {
    await presence(auth, false);
    await page.goto(alone.url);
    await page.locator("#passkey-button").waitFor({ state: "visible" });
    await settled(page);
    await presence(auth, true);
    await page.click("#passkey-button");
    return codeFrom(await redirectOf(page, opts), alone, opts);
  }, page);

  await step("redeem the code: phishing-resistant acr, amr hwk", async () => {
    const claims = await redeem(code, alone, opts);
    check(claims.acr === ACR_PHISHING_RESISTANT, `acr is ${claims.acr}`);
    check(Array.isArray(claims.amr) && claims.amr.includes("hwk"), `amr is ${claims.amr}`);
    check(!claims.amr.includes("pwd"), `amr is ${claims.amr}: no password was used`);
    noProblems(page);
  });

  const autofill = newFlow(opts);
  await step("sign in through the browser's autofill (conditional mediation)", async () => {
    await context.clearCookies({ name: "latchkey_session" });
    await page.goto(autofill.url);
    // Nothing is pressed: the virtual authenticator answers the page's conditional
    // request as a person picking the passkey from the username field's autofill would.
    const code = codeFrom(await redirectOf(page, opts), autofill, opts);
    const claims = await redeem(code, autofill, opts);
    check(claims.acr === ACR_PHISHING_RESISTANT, `acr is ${claims.acr}`);
    noProblems(page);
  }, page);

  // The same credential, exported from this browser and imported into a fresh one.
  const exported = await credentials(auth);
  await context.close();
  const fresh = await browser.newContext({ viewport: WIDE });
  const page2 = await newPage(fresh, opts);
  const auth2 = await virtualAuthenticator(fresh, page2);
  for (const credential of exported) {
    await auth2.cdp.send("WebAuthn.addCredential", {
      authenticatorId: auth2.authenticatorId,
      credential,
    });
  }

  const second = newFlow(opts);
  await step("password, then the second-factor page", async () => {
    await presence(auth2, false);
    await page2.goto(second.url);
    await page2.locator("#passkey-signin").waitFor({ state: "visible" });
    await settled(page2);
    await submitPassword(page2, opts);
    await page2.locator("#passkey-mfa-button").waitFor({ state: "visible" });
    await settled(page2);
    await shot(page2, out, "second-factor.png");
    await presence(auth2, true);
  }, page2);

  const code2 = await step("use the passkey as the second factor", async () => {
    await page2.click("#passkey-mfa-button");
    return codeFrom(await redirectOf(page2, opts), second, opts);
  }, page2);

  await step("redeem the second code: amr pwd and hwk", async () => {
    const claims = await redeem(code2, second, opts);
    check(Array.isArray(claims.amr), `amr is ${claims.amr}`);
    check(claims.amr.includes("pwd") && claims.amr.includes("hwk"), `amr is ${claims.amr}`);
    noProblems(page2);
  });
  await fresh.close();
}

// Every step above, the launch included.
const TOTAL_STEPS = 10;

async function main() {
  let opts;
  try {
    opts = options(process.argv.slice(2), process.env);
  } catch (err) {
    console.log(`FAIL options: ${err.message}`);
    console.log("0 passed, 1 failed");
    process.exit(2);
  }
  mkdirSync(opts.out, { recursive: true });
  const watchdog = setTimeout(() => {
    console.log(`FAIL journey: still running after ${WATCHDOG_MS} ms, in ${JSON.stringify(current)}`);
    console.log(`${results.passed} passed, ${results.failed + 1} failed`);
    process.exit(1);
  }, WATCHDOG_MS);
  watchdog.unref();

  let browser;
  try {
    browser = await step("launch Debian's Chromium", () =>
      chromium.launch({
        executablePath: opts.chromium,
        headless: true,
        args: CHROMIUM_ARGS,
        timeout: WAIT_MS,
      }),
    );
    await journey(browser, opts);
  } catch (err) {
    if (!(err instanceof Stop)) {
      results.failed++;
      console.log(`FAIL journey: ${String((err && err.message) || err).split("\n")[0]}`);
    }
  } finally {
    if (browser) await browser.close().catch(() => {});
  }
  const skipped = TOTAL_STEPS - results.passed - results.failed;
  const tail = skipped > 0 ? `, ${skipped} skipped` : "";
  console.log(`${results.passed} passed, ${results.failed} failed${tail}`);
  process.exit(results.failed === 0 && skipped === 0 ? 0 : 1);
}

main();
