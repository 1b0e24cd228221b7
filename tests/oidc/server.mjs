// A real authorization server for Latch's tests: panva/oidc-provider on loopback, with PKCE
// required, rotating refresh tokens (reuse revokes the grant), revocation, introspection and
// RFC 9207 `iss` in authorization responses. Consent is automatic; the account that signs in is
// set through /_test/account. /_test/stats counts token-endpoint outcomes; /_test/fail makes the
// token endpoint answer 500 for the next N requests (outage simulation); /_test/delay holds
// token requests before processing them; /_test/hold holds token answers after processing them
// (the provider has rotated the refresh token, the client has not heard yet).
//
// Usage: node server.mjs <redirect_uri> <client_secret> [access_token_ttl_seconds]
// Prints "READY <port>" once listening on 127.0.0.1.
import http from 'node:http';
import { Provider } from 'oidc-provider';

const [redirectUri, clientSecret, accessTtl = '3600'] = process.argv.slice(2);
const accounts = new Map([['alice', { email: 'alice@oidc.example' }], ['bob', { email: 'bob@oidc.example' }]]);
let nextAccount = 'alice';
let failNext = 0;
let delayMs = 0;
let holdMs = 0;
const stats = { refresh_token: 0, authorization_code: 0, errors: 0, revoked_grants: 0, error_codes: [], injected_failures: 0 };
let provider;

const server = http.createServer(async (req, res) => {
  const url = new URL(req.url, 'http://127.0.0.1');
  try {
    if (url.pathname === '/_test/account') {
      nextAccount = url.searchParams.get('id');
      return json(res, 200, { account: nextAccount });
    }
    if (url.pathname === '/_test/stats') return json(res, 200, stats);
    if (url.pathname === '/_test/fail') {
      failNext = Number(url.searchParams.get('n') || '1');
      return json(res, 200, { failNext });
    }
    if (url.pathname === '/_test/delay') {
      delayMs = Number(url.searchParams.get('ms') || '0');
      return json(res, 200, { delayMs });
    }
    if (url.pathname === '/_test/hold') {
      holdMs = Number(url.searchParams.get('ms') || '0');
      return json(res, 200, { holdMs });
    }
    if (url.pathname === '/token' && holdMs > 0) {
      // After the provider has answered (and rotated): the answer is written late.
      const end = res.end.bind(res);
      const hold = holdMs;
      res.end = (...args) => { setTimeout(() => end(...args), hold); return res; };
    }
    if (url.pathname === '/token' && delayMs > 0) {
      // Before the provider sees the request: a client killed meanwhile has spent nothing.
      await new Promise((resolve) => setTimeout(resolve, delayMs));
    }
    if (url.pathname === '/token' && failNext > 0) {
      failNext -= 1;
      stats.injected_failures += 1;
      return json(res, 500, { error: 'server_error' });
    }
    if (url.pathname.startsWith('/interaction/')) {
      // Automatic login and consent: grant exactly what was asked.
      const details = await provider.interactionDetails(req, res);
      const { prompt, params, grantId } = details;
      const grant = grantId ? await provider.Grant.find(grantId) : new provider.Grant({ accountId: nextAccount, clientId: params.client_id });
      if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
      if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
      const id = await grant.save();
      return provider.interactionFinished(req, res, { login: { accountId: nextAccount }, consent: { grantId: id } }, { mergeWithLastSubmission: false });
    }
    return provider.callback()(req, res);
  } catch (err) {
    console.error(err);
    return json(res, 500, { error: 'server_error' });
  }
});

function json(res, status, body) {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  provider = new Provider(issuer, {
    clients: [{
      client_id: 'latch',
      client_secret: clientSecret,
      redirect_uris: [redirectUri],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'client_secret_basic',
    }],
    pkce: { required: () => true },
    features: {
      devInteractions: { enabled: false },
      revocation: { enabled: true },
      introspection: { enabled: true },
    },
    interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
    cookies: { keys: ['latch-test-cookie-key'] },
    claims: { openid: ['sub'], email: ['email'] },
    scopes: ['openid', 'email', 'offline_access'],
    rotateRefreshToken: true,
    issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
    ttl: { AccessToken: Number(accessTtl), RefreshToken: 86400, Grant: 86400, Session: 86400, Interaction: 600, AuthorizationCode: 60 },
    findAccount: async (ctx, id) => accounts.has(id) ? { accountId: id, claims: async () => ({ sub: id, ...accounts.get(id) }) } : undefined,
  });
  provider.proxy = false;
  provider.on('grant.success', (ctx) => {
    const type = ctx.oidc.params.grant_type;
    if (type in stats) stats[type] += 1;
  });
  provider.on('grant.error', (ctx, err) => { stats.errors += 1; stats.error_codes.push(err.error); });
  provider.on('grant.revoked', () => { stats.revoked_grants += 1; });
  console.log(`READY ${port}`);
});
