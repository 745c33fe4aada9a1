// A resource server that caches the JWKS for exactly its Cache-Control max-age (jose's
// createRemoteJWKSet) verifies client_credentials access tokens (RFC 9068) in a loop while
// `latchkey keys rotate` runs twice. Zero verification failures are allowed.
//
// The cache is strict: `cooldownDuration` is longer than the run, so an unknown `kid` never
// makes jose refetch early. Only the server's timing guarantee (docs/key-rotation.md: a
// new key signs no earlier than refresh_interval + jwks_max_age after it was published)
// keeps every token verifiable.
//
// Environment: ISSUER, CC_CLIENT_ID, CC_CLIENT_SECRET, CC_AUDIENCE, LATCHKEY_BIN,
// LATCHKEY_CONFIG, KEYS_REFRESH_SECS. Prints `ok ...` / `FAIL ...` lines; exits 1 on failure.

import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import * as jose from 'jose';
import * as client from 'openid-client';
import { Report, env } from './browser.mjs';

const run = promisify(execFile);
const ISSUER = env('ISSUER');
const AUDIENCE = env('CC_AUDIENCE');
const R = Number(env('KEYS_REFRESH_SECS'));
const ROTATIONS = 2;
const DEADLINE_MS = 120_000;
const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

const r = new Report();
const started = Date.now();

async function main() {
  const config = await client.discovery(
    new URL(ISSUER),
    env('CC_CLIENT_ID'),
    undefined,
    client.ClientSecretBasic(env('CC_CLIENT_SECRET')),
    { execute: [client.allowInsecureRequests], timeout: 10 },
  );
  const jwksUri = new URL(config.serverMetadata().jwks_uri);

  // The max-age the server publishes is what this resource server caches for.
  const head = await fetch(jwksUri, { signal: AbortSignal.timeout(10_000) });
  const cc = head.headers.get('cache-control') ?? '';
  const maxAge = Number(/max-age=(\d+)/.exec(cc)?.[1]);
  if (!r.check(`JWKS served with Cache-Control max-age (${cc})`, maxAge > 0, `cache-control: ${cc}`)) return;
  await head.arrayBuffer();

  let jwksFetches = 0;
  const JWKS = jose.createRemoteJWKSet(jwksUri, {
    cacheMaxAge: maxAge * 1000,
    cooldownDuration: DEADLINE_MS * 10,
    timeoutDuration: 5_000,
    [jose.customFetch]: (...args) => {
      jwksFetches++;
      return fetch(...args);
    },
  });

  let verified = 0;
  const failures = [];
  const kids = new Map(); // kid -> tokens verified with it
  const minted = async () => {
    const t = await client.clientCredentialsGrant(config, { resource: AUDIENCE });
    return t.access_token;
  };
  const verifyOne = async () => {
    let token;
    try {
      token = await minted();
    } catch (e) {
      failures.push(`token endpoint: ${e.error ?? e.message}`);
      return;
    }
    try {
      const { payload, protectedHeader } = await jose.jwtVerify(token, JWKS, {
        issuer: ISSUER,
        audience: AUDIENCE,
        algorithms: ['RS256'],
        typ: 'at+jwt',
        requiredClaims: ['exp', 'iat', 'jti', 'client_id', 'sub'],
      });
      if (payload.client_id !== env('CC_CLIENT_ID')) throw new Error(`client_id ${payload.client_id}`);
      verified++;
      kids.set(protectedHeader.kid, (kids.get(protectedHeader.kid) ?? 0) + 1);
    } catch (e) {
      const kid = jose.decodeProtectedHeader(token).kid;
      failures.push(`${e.code ?? e.name}: ${e.message} (kid ${kid}, t=${((Date.now() - started) / 1000).toFixed(1)}s)`);
    }
  };

  // The verifying loop runs until `done`, one token at a time.
  let done = false;
  const loop = (async () => {
    while (!done && Date.now() - started < DEADLINE_MS) {
      await verifyOne();
      await sleep(50);
    }
  })();

  // Rotations: wait as the docs say (the next key must have been published for R + M);
  // a refusal because it is still too new is retried each second, within the deadline.
  const rotated = [];
  let nextReadyAt = started; // the server's first next key was created before we started
  for (let i = 1; i <= ROTATIONS; i++) {
    await sleep(Math.max(0, nextReadyAt - Date.now()));
    let out;
    for (;;) {
      try {
        out = await run(env('LATCHKEY_BIN'), ['--config', env('LATCHKEY_CONFIG'), 'keys', 'rotate'], {
          timeout: 30_000,
        });
        break;
      } catch (e) {
        const msg = `${e.stderr ?? e.message}`.trim();
        if (!/published for/.test(msg) || Date.now() - started > DEADLINE_MS) {
          r.fail(`keys rotate #${i}`, msg);
          done = true;
          await loop;
          return;
        }
        await sleep(1000);
      }
    }
    const current = /current:\s+(\S+)/.exec(out.stdout)?.[1];
    rotated.push(current);
    r.ok(`keys rotate #${i} at t=${((Date.now() - started) / 1000).toFixed(1)}s, now signing with ${current}`);
    nextReadyAt = Date.now() + (R + maxAge) * 1000;
  }
  // Keep verifying until every node signs with the last key and a whole cache period more.
  await sleep((R + maxAge + 1) * 1000);
  done = true;
  await loop;

  r.check(
    `${verified} access tokens verified with ${jwksFetches} JWKS fetches, ${failures.length} failures`,
    failures.length === 0 && verified > 0,
    failures.slice(0, 5).join('; '),
  );
  const missing = rotated.filter((kid) => !kids.has(kid));
  r.check(
    `tokens signed by ${kids.size} keys verified, including each rotated-in key`,
    kids.size >= ROTATIONS + 1 && missing.length === 0,
    `kids seen ${JSON.stringify(Object.fromEntries(kids))}, never seen ${missing.join(',')}`,
  );
}

try {
  await main();
} catch (e) {
  r.fail('unexpected error', e);
}
process.exitCode = r.failed > 0 ? 1 : 0;
