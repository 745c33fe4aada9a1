// The reference peer for benches/load.sh: node-oidc-provider (npm `oidc-provider`), set up
// like the Latchkey clients the suite provisions, with its in-memory adapter (nothing is
// durable). Not a production configuration.
//
//   PORT=... CLIENT_ID=... CLIENT_SECRET=... CC_CLIENT_ID=... CC_CLIENT_SECRET=...
//   REDIRECT_URI=... RESOURCE=... node provider.mjs
//
// Interactions: node-oidc-provider leaves sign-in and consent to the application. Here
// /interaction/:uid signs the one account in and grants what the client asked for, without
// a form, so that the driver can create sessions and grants; the measured code flow then
// uses the session and the stored grant (`loadExistingGrant`) and never reaches this page.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';

import Provider from 'oidc-provider';

const env = (name) => {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
};
const port = Number(env('PORT'));
const issuer = `http://127.0.0.1:${port}`;
const resource = env('RESOURCE');
const ACCOUNT = 'bench-user';

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'bench-rs256', alg: 'RS256', use: 'sig' };

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: env('CLIENT_ID'),
      client_secret: env('CLIENT_SECRET'),
      redirect_uris: [env('REDIRECT_URI')],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      scope: 'openid profile email offline_access',
    },
    {
      client_id: env('CC_CLIENT_ID'),
      client_secret: env('CC_CLIENT_SECRET'),
      redirect_uris: [],
      grant_types: ['client_credentials'],
      response_types: [],
      scope: 'api:read',
    },
  ],
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('base64url')] },
  scopes: ['openid', 'offline_access', 'profile', 'email', 'api:read'],
  claims: { openid: ['sub'], profile: ['name', 'preferred_username'], email: ['email', 'email_verified'] },
  pkce: { required: () => true },
  rotateRefreshToken: true,
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    userinfo: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // Only an explicit `resource` (client_credentials) gets an RS256 JWT access token, as
      // Latchkey issues; code-flow access tokens stay opaque so that /me accepts them.
      defaultResource: () => undefined,
      useGrantedResource: () => false,
      getResourceServerInfo: (ctx, indicator) => {
        if (indicator !== resource) throw new Provider.errors.InvalidTarget();
        return { scope: 'api:read', audience: resource, accessTokenTTL: 300, accessTokenFormat: 'jwt', jwt: { sign: { alg: 'RS256' } } };
      },
    },
  },
  findAccount: (ctx, sub) => (sub === ACCOUNT ? {
    accountId: sub,
    claims: () => ({ sub, name: 'Bench User', preferred_username: 'bench', email: 'bench@example.test', email_verified: true }),
  } : undefined),
  ttl: { AccessToken: 300, AuthorizationCode: 60, IdToken: 300, RefreshToken: 86400, Interaction: 600, Session: 86400, Grant: 86400 },
});

// The stand-in for the application's sign-in and consent pages (see the top).
async function interaction(req, res) {
  const { prompt, params, session } = await provider.interactionDetails(req, res);
  let result;
  if (prompt.name === 'login') {
    result = { login: { accountId: ACCOUNT } };
  } else {
    const grant = new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
    grant.addOIDCScope(String(params.scope));
    result = { consent: { grantId: await grant.save() } };
  }
  await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: true });
}

const oidc = provider.callback();
createServer((req, res) => {
  if (req.url.startsWith('/interaction/')) {
    interaction(req, res).catch((e) => {
      res.statusCode = 500;
      res.end(String(e));
    });
  } else {
    oidc(req, res);
  }
}).listen(port, '127.0.0.1', () => console.log(`listening on ${issuer}`));
