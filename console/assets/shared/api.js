// Connect JSON calls to riskd from the browser. The bearer token lives in
// sessionStorage (gone when the tab closes), never in a URL or a cookie.
// Every call also sends the session's X-CSRF-Token, which riskd requires of
// browser calls (console.Protect): only a script of this origin can set it.

const TOKEN = 'riskd.token';
const CSRF = 'riskd.csrf';

export class APIError extends Error {
  constructor(code, message, status) {
    super(message || code);
    this.code = code;
    this.status = status;
  }
}

export function token() {
  return sessionStorage.getItem(TOKEN) || '';
}

export function setToken(t) {
  if (t) sessionStorage.setItem(TOKEN, t);
  else sessionStorage.removeItem(TOKEN);
  sessionStorage.removeItem(CSRF);
}

export function signOut() {
  sessionStorage.clear();
}

export function csrfToken() {
  let c = sessionStorage.getItem(CSRF);
  if (!c) {
    const b = new Uint8Array(16);
    crypto.getRandomValues(b);
    c = Array.from(b, (x) => x.toString(16).padStart(2, '0')).join('');
    sessionStorage.setItem(CSRF, c);
  }
  return c;
}

// takeFragmentToken moves a token handed over in the URL fragment
// (#token=...) into sessionStorage and strips it from the address bar and
// the history entry. Fragments are never sent to a server, so the token
// reaches no access log; after this it is not in the URL at all. Other
// fragment parameters (e.g. decision=ID) are returned.
export function takeFragmentToken() {
  const frag = location.hash.replace(/^#/, '');
  if (!frag.includes('token=')) return {};
  const params = new URLSearchParams(frag);
  const t = params.get('token');
  params.delete('token');
  if (t) setToken(t);
  const out = Object.fromEntries(params.entries());
  history.replaceState(null, '', location.pathname + location.search);
  return out;
}

// call POSTs one unary Connect request and returns the decoded response.
export async function call(service, method, body = {}) {
  let res;
  try {
    res = await fetch(`/risk.v1.${service}/${method}`, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/json',
        'Connect-Protocol-Version': '1',
        'Authorization': 'Bearer ' + token(),
        'X-CSRF-Token': csrfToken(),
      },
      body: JSON.stringify(body),
      credentials: 'omit',
      cache: 'no-store',
      referrerPolicy: 'no-referrer',
    });
  } catch (e) {
    throw new APIError('unavailable', 'riskd cannot be reached: ' + e.message, 0);
  }
  const text = await res.text();
  let data = {};
  if (text) {
    try { data = JSON.parse(text); } catch { data = { message: text }; }
  }
  if (!res.ok) {
    const err = new APIError(data.code || String(res.status), data.message || res.statusText, res.status);
    // The page decides what signing out means (the console shows its
    // sign-in form again).
    if (err.code === 'unauthenticated') window.dispatchEvent(new CustomEvent('riskd:unauthenticated', { detail: err }));
    throw err;
  }
  return data;
}

// whoami asks the console which role the signed-in token has.
export async function whoami() {
  const res = await fetch('/console/whoami', {
    headers: { 'Authorization': 'Bearer ' + token() },
    credentials: 'omit', cache: 'no-store',
  });
  if (res.status === 401) throw new APIError('unauthenticated', 'This token is not valid.', 401);
  if (!res.ok) throw new APIError(String(res.status), res.statusText, res.status);
  return res.json();
}

// clientStream sends a client-streaming Connect call: every message in
// one request body as enveloped JSON frames, and reads the single
// response (or the end-of-stream error).
export async function clientStream(service, method, messages) {
  const enc = new TextEncoder();
  const frames = messages.map((m) => {
    const data = enc.encode(JSON.stringify(m));
    const f = new Uint8Array(5 + data.length);
    new DataView(f.buffer).setUint32(1, data.length);
    f.set(data, 5);
    return f;
  });
  let res;
  try {
    res = await fetch(`/risk.v1.${service}/${method}`, {
      method: 'POST',
      headers: {
        'Content-Type': 'application/connect+json',
        'Connect-Protocol-Version': '1',
        'Authorization': 'Bearer ' + token(),
        'X-CSRF-Token': csrfToken(),
      },
      body: new Blob(frames),
      credentials: 'omit', cache: 'no-store', referrerPolicy: 'no-referrer',
    });
  } catch (e) {
    throw new APIError('unavailable', 'riskd cannot be reached: ' + e.message, 0);
  }
  const buf = new Uint8Array(await res.arrayBuffer());
  if (!res.ok) {
    let data = {};
    try { data = JSON.parse(new TextDecoder().decode(buf)); } catch { /* not JSON */ }
    throw new APIError(data.code || String(res.status), data.message || res.statusText, res.status);
  }
  let msg = null;
  for (let off = 0; off + 5 <= buf.length;) {
    const flags = buf[off];
    const len = new DataView(buf.buffer, buf.byteOffset + off + 1, 4).getUint32(0);
    const body = JSON.parse(new TextDecoder().decode(buf.subarray(off + 5, off + 5 + len)) || '{}');
    off += 5 + len;
    if (flags & 2) {
      if (body.error) throw new APIError(body.error.code || 'unknown', body.error.message || body.error.code, res.status);
    } else {
      msg = body;
    }
  }
  return msg || {};
}
