// A minimal "browser" for the interop checks: fetch with a cookie jar of our own, manual
// redirects, and the two forms a password sign-in meets (login, logout confirmation).
// No JavaScript, no passkeys: the password form is the whole login page for an issuer
// with an IP-address host.

const TIMEOUT_MS = 10_000;

export class Browser {
  constructor(issuer) {
    this.origin = new URL(issuer).origin;
    this.jar = new Map();
  }

  /** One request, no redirect following; keeps cookies for the issuer's origin. */
  async request(url, { method = 'GET', form } = {}) {
    const u = new URL(url, this.origin);
    const headers = {};
    const sameOrigin = u.origin === this.origin;
    if (sameOrigin && this.jar.size > 0) {
      headers.cookie = [...this.jar].map(([k, v]) => `${k}=${v}`).join('; ');
    }
    let body;
    if (form) {
      headers['content-type'] = 'application/x-www-form-urlencoded';
      body = new URLSearchParams(form).toString();
    }
    const res = await fetch(u, {
      method,
      headers,
      body,
      redirect: 'manual',
      signal: AbortSignal.timeout(TIMEOUT_MS),
    });
    if (sameOrigin) {
      for (const line of res.headers.getSetCookie()) this.#store(line);
    }
    return res;
  }

  #store(line) {
    const [pair, ...attrs] = line.split(';');
    const eq = pair.indexOf('=');
    const name = pair.slice(0, eq).trim();
    const value = pair.slice(eq + 1).trim();
    const expired = attrs.some((a) => {
      const [k, v = ''] = a.trim().split('=');
      if (k.toLowerCase() === 'max-age') return Number(v) <= 0;
      if (k.toLowerCase() === 'expires') return Date.parse(v) <= Date.now();
      return false;
    });
    if (expired || value === '') this.jar.delete(name);
    else this.jar.set(name, value);
  }

  /**
   * GETs `url` and follows redirects while they stay on the issuer; returns the first
   * Location that leaves it (the client's redirect), or the last page as
   * `{ page, status, url }`.
   */
  async follow(url, hops = 10) {
    let next = new URL(url, this.origin).href;
    for (let i = 0; i < hops; i++) {
      const res = await this.request(next);
      const loc = res.headers.get('location');
      if (res.status >= 300 && res.status < 400 && loc) {
        const abs = new URL(loc, next);
        if (abs.origin !== this.origin) return { redirect: abs.href, status: res.status };
        next = abs.href;
        continue;
      }
      return { page: await res.text(), status: res.status, url: next };
    }
    throw new Error(`more than ${hops} redirects from ${url}`);
  }

  /** Submits a parsed form; same return shape as `follow`. */
  async submit(form, extra = {}) {
    const res = await this.request(form.action, {
      method: 'POST',
      form: { ...form.fields, ...extra },
    });
    const loc = res.headers.get('location');
    if (res.status >= 300 && res.status < 400 && loc) {
      const abs = new URL(loc, this.origin);
      if (abs.origin !== this.origin) return { redirect: abs.href, status: res.status };
      return this.follow(abs.href);
    }
    return { page: await res.text(), status: res.status, url: form.action };
  }
}

/** The first `<form>` posting to `action`, with its hidden inputs decoded. */
export function findForm(html, action) {
  for (const m of html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/gi)) {
    const attrs = attributes(m[1]);
    if ((attrs.action ?? '') !== action) continue;
    const fields = {};
    for (const input of m[2].matchAll(/<input\b([^>]*)>/gi)) {
      const a = attributes(input[1]);
      if ((a.type ?? '').toLowerCase() === 'hidden' && a.name) fields[a.name] = a.value ?? '';
    }
    return { action, method: (attrs.method ?? 'get').toLowerCase(), fields };
  }
  return null;
}

function attributes(s) {
  const out = {};
  for (const m of s.matchAll(/([a-zA-Z_:-]+)\s*=\s*"([^"]*)"/g)) out[m[1].toLowerCase()] = decode(m[2]);
  return out;
}

function decode(s) {
  const named = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
  return s.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (all, e) => {
    if (e[0] === '#') {
      const code = e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
      return String.fromCodePoint(code);
    }
    return named[e.toLowerCase()] ?? all;
  });
}

/** A short, single-line excerpt of a page for a FAIL message. */
export function excerpt(html) {
  return html
    .replace(/<style[\s\S]*?<\/style>|<script[\s\S]*?<\/script>/gi, '')
    .replace(/<[^>]+>/g, ' ')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, 200);
}

/** Prints `ok` / `FAIL` lines and counts them. */
export class Report {
  constructor() {
    this.passed = 0;
    this.failed = 0;
  }
  ok(what) {
    this.passed++;
    console.log(`ok ${what}`);
  }
  fail(what, why) {
    this.failed++;
    const msg = why instanceof Error ? describe(why) : String(why);
    console.log(`FAIL ${what}: ${msg.replace(/\s+/g, ' ')}`);
  }
  check(what, cond, why) {
    if (cond) this.ok(what);
    else this.fail(what, why);
    return cond;
  }
}

function describe(e) {
  const parts = [`${e.name}: ${e.message}`];
  if (e.code) parts.push(`code=${e.code}`);
  if (e.error) parts.push(`error=${e.error}`);
  if (e.error_description) parts.push(`error_description=${e.error_description}`);
  if (e.cause && typeof e.cause === 'object') {
    try {
      parts.push(`cause=${JSON.stringify(e.cause).slice(0, 300)}`);
    } catch {
      /* not serialisable */
    }
  }
  return parts.join(' ');
}

export function env(name) {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
}
