'use strict';

// Test PKI made with the openssl CLI: CAs, server certificates for 127.0.0.1 (and names),
// client certificates. Everything goes under one temporary directory the caller removes.

const { execFileSync } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

function pkiDir(tag) {
  return fs.mkdtempSync(path.join(os.tmpdir(), `dnastore-${tag}-`));
}

function openssl(args, cwd) {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** A self-signed CA: { crt, key } paths. */
function makeCa(dir, name) {
  const crt = path.join(dir, `${name}.crt`);
  const key = path.join(dir, `${name}.key`);
  openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-days', '2', '-subj', `/CN=${name}`, '-keyout', key, '-out', crt, '-addext', 'basicConstraints=critical,CA:TRUE', '-addext', 'keyUsage=critical,keyCertSign,cRLSign'], dir);
  return { crt, key };
}

/**
 * A leaf signed by `ca`; `san` like 'IP:127.0.0.1,DNS:x'; `usage` serverAuth or clientAuth.
 * `v1: true` signs it without `-extfile`, the quick way, which makes an X.509 v1
 * certificate (no extensions: `usage` and `san` are not written).
 */
function makeLeaf(dir, ca, name, { san, usage, v1 = false }) {
  const crt = path.join(dir, `${name}.crt`);
  const key = path.join(dir, `${name}.key`);
  const csr = path.join(dir, `${name}.csr`);
  const ext = path.join(dir, `${name}.ext`);
  openssl(['req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', `/CN=${name}`, '-keyout', key, '-out', csr], dir);
  const sign = ['x509', '-req', '-in', csr, '-CA', ca.crt, '-CAkey', ca.key, '-CAcreateserial', '-days', '2', '-out', crt];
  if (!v1) {
    const lines = ['basicConstraints=CA:FALSE', `extendedKeyUsage=${usage}`];
    if (san) lines.push(`subjectAltName=${san}`);
    fs.writeFileSync(ext, `${lines.join('\n')}\n`);
    sign.push('-extfile', ext);
  }
  openssl(sign, dir);
  fs.chmodSync(key, 0o600);
  return { crt, key };
}

/** Replaces `dest` atomically (write aside, rename over), as cert-manager and kubelet do. */
function replaceAtomically(dest, content) {
  const tmp = `${dest}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, content, { mode: 0o600 });
  fs.renameSync(tmp, dest);
}

module.exports = { pkiDir, makeCa, makeLeaf, replaceAtomically };
