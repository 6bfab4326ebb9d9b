// Preloaded into configurable-http-proxy (node --require) by hubs whose certificate is
// renewed while they run (jupyterhub_tls_source: acme). The proxy reads --ssl-key and
// --ssl-cert once, at start; this watches both files and, when they change (a renewal
// renames the new key, then the new certificate, into place), sets the pair as its HTTPS
// server's secure context: new connections get the new certificate; open connections, the
// proxy's routes and the users' servers are untouched. A pair that does not match (read
// between the two renames) is skipped; the next change sets it.
"use strict";
const fs = require("fs");
const https = require("https");
const tls = require("tls");

function argument(name) {
  const index = process.argv.indexOf(name);
  return index > 0 ? process.argv[index + 1] : undefined;
}

const keyFile = argument("--ssl-key");
const certFile = argument("--ssl-cert");
const intervalMs = parseInt(process.env.HUBFLEET_TLS_RELOAD_INTERVAL_MS || "5000", 10);
const createServer = https.createServer;

function isProxyServer(options) {
  // The proxy's public server is the one made with --ssl-cert (the API server has its own).
  try {
    return Boolean(keyFile && certFile && options && options.cert) &&
      Buffer.from(options.cert).equals(fs.readFileSync(certFile));
  } catch (error) {
    return false;
  }
}

function watch(server, options) {
  const reload = (current, previous) => {
    if (current.mtimeMs === previous.mtimeMs && current.ino === previous.ino) return;
    try {
      const pair = { key: fs.readFileSync(keyFile), cert: fs.readFileSync(certFile) };
      tls.createSecureContext(pair); // throws when the key does not match the certificate
      server.setSecureContext({ ...options, ...pair });
      console.log(`${new Date().toISOString()} [hubfleet] new TLS certificate from ${certFile} in use`);
    } catch (error) {
      console.error(`${new Date().toISOString()} [hubfleet] TLS files not reloaded yet: ${error.message}`);
    }
  };
  for (const file of [keyFile, certFile]) {
    fs.watchFile(file, { interval: intervalMs, persistent: false }, reload);
  }
}

https.createServer = function (options, ...rest) {
  const server = createServer.call(this, options, ...rest);
  if (isProxyServer(options)) watch(server, options);
  return server;
};
