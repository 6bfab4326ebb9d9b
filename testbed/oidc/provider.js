// An OpenID provider for the OIDC login test: panva's oidc-provider (OpenID Certified) with
// one confidential client (the hub), two accounts whose passwords come from the environment,
// and a plain login page that checks them. Consent is granted without a page (the hub is a
// first-party client here). Served over HTTPS with the test CA's certificate (start.sh).
// Test bed only.
import { generateKeyPairSync, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';
import { parse } from 'node:querystring';

import Provider from 'oidc-provider';

const env = (name) => {
  if (!process.env[name]) throw new Error(`${name} must be set`);
  return process.env[name];
};

const PORT = Number(process.env.OIDC_PORT || 8443);
const ISSUER = `https://${env('OIDC_HOSTNAME')}:${PORT}`;
// ada is a student, carl is in no group.
const ACCOUNTS = {
  ada: { password: env('ADA_PASSWORD'), name: 'Ada Lovelace', groups: ['students'] },
  carl: { password: env('CARL_PASSWORD'), name: 'Carl Gauss', groups: [] },
};

const signingKey = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;

const provider = new Provider(ISSUER, {
  clients: [{
    client_id: env('OIDC_CLIENT_ID'),
    client_secret: env('OIDC_CLIENT_SECRET'),
    redirect_uris: [env('OIDC_REDIRECT_URI')],
    grant_types: ['authorization_code'],
    response_types: ['code'],
  }],
  jwks: { keys: [{ ...signingKey.export({ format: 'jwk' }), kid: 'test', use: 'sig', alg: 'RS256' }] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  claims: {
    openid: ['sub'],
    profile: ['name', 'preferred_username'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
  },
  features: { devInteractions: { enabled: false } },
  async findAccount(ctx, sub) {
    const account = ACCOUNTS[sub];
    if (!account) return undefined;
    return {
      accountId: sub,
      async claims() {
        return {
          sub,
          name: account.name,
          preferred_username: sub,
          email: `${sub}@hubfleet.test`,
          email_verified: true,
          groups: account.groups,
        };
      },
    };
  },
});

const escape = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

function loginPage(res, uid, message) {
  res.statusCode = message ? 401 : 200;
  res.setHeader('Content-Type', 'text/html; charset=utf-8');
  res.end(`<!DOCTYPE html><html><head><title>Hubfleet test provider</title></head><body>
<h1>Sign in to the Hubfleet test provider</h1>
${message ? `<p id="error">${escape(message)}</p>` : ''}
<form method="post" action="/interaction/${escape(uid)}/login">
<input id="login" name="login" autocomplete="username">
<input id="password" name="password" type="password" autocomplete="current-password">
<button id="submit" type="submit">Sign in</button>
</form></body></html>`);
}

function passwordMatches(account, password) {
  const want = Buffer.from(account.password);
  const given = Buffer.from(String(password || ''));
  return want.length === given.length && timingSafeEqual(want, given);
}

async function readForm(req) {
  const chunks = [];
  for await (const chunk of req) chunks.push(chunk);
  return parse(Buffer.concat(chunks).toString());
}

// The first-party hub gets what it asked for: a grant of the requested scopes and claims.
async function grantConsent(req, res, details) {
  const { prompt: { details: missing }, params, session: { accountId } } = details;
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId, clientId: params.client_id });
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  const grantId = await grant.save();
  await provider.interactionFinished(req, res, { consent: details.grantId ? {} : { grantId } });
}

async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  if (req.method === 'POST' && req.url.endsWith('/login')) {
    const form = await readForm(req);
    const account = ACCOUNTS[form.login];
    if (!account || !passwordMatches(account, form.password)) {
      console.log(`login refused for ${JSON.stringify(form.login)}`);
      return loginPage(res, details.uid, 'Invalid login or password.');
    }
    console.log(`login of ${form.login}`);
    return provider.interactionFinished(req, res, { login: { accountId: form.login } });
  }
  if (details.prompt.name === 'consent') return grantConsent(req, res, details);
  return loginPage(res, details.uid);
}

const handle = provider.callback();
createServer({
  key: readFileSync(env('OIDC_TLS_KEY')),
  cert: readFileSync(env('OIDC_TLS_CERT')),
}, (req, res) => {
  if (!req.url.startsWith('/interaction/')) return handle(req, res);
  return interaction(req, res).catch((error) => {
    console.error(error);
    res.statusCode = 400;
    res.end(`interaction failed: ${error.message}`);
  });
}).listen(PORT, () => console.log(`oidc-provider listening on ${ISSUER}`));
