// The Engine API as the pages use it (under /api: the daemon's own handlers), and
// small helpers for formatting and escaping.

const H = { 'X-Berth-UI': '1' };

export class ApiError extends Error {
  constructor(status, message) { super(message); this.status = status; }
}

// JSON request; resolves to the parsed body (or null), rejects with the daemon's message.
export async function api(path, { method = 'GET', body, signal } = {}) {
  const opts = { method, headers: { ...H }, signal };
  if (body !== undefined) {
    opts.headers['Content-Type'] = 'application/json';
    opts.body = JSON.stringify(body);
  }
  const r = await fetch('/api' + path, opts);
  const text = await r.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!r.ok && r.status !== 304) {
    throw new ApiError(r.status, (data && data.message) || text || r.statusText);
  }
  return data;
}

export const q = (obj) => '?' + new URLSearchParams(obj).toString();
export const filters = (f) => encodeURIComponent(JSON.stringify(f));

// A streamed body, chunk by chunk (Uint8Array), until it ends or `signal` aborts.
export async function stream(path, onChunk, signal) {
  const r = await fetch('/api' + path, { headers: H, signal });
  if (!r.ok) {
    let msg = r.statusText;
    try { msg = (await r.json()).message; } catch { /* not JSON */ }
    throw new ApiError(r.status, msg);
  }
  const reader = r.body.getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    onChunk(value);
  }
}

// Docker's stdcopy framing (8-byte header: stream, 0,0,0, big-endian length), fed
// chunk by chunk; calls out(streamNo, bytes) per frame.
export class Demux {
  constructor(out) { this.out = out; this.buf = new Uint8Array(0); }
  push(chunk) {
    const b = new Uint8Array(this.buf.length + chunk.length);
    b.set(this.buf); b.set(chunk, this.buf.length);
    let i = 0;
    while (b.length - i >= 8) {
      const n = (b[i + 4] << 24 | b[i + 5] << 16 | b[i + 6] << 8 | b[i + 7]) >>> 0;
      if (b.length - i - 8 < n) break;
      this.out(b[i], b.subarray(i + 8, i + 8 + n));
      i += 8 + n;
    }
    this.buf = b.slice(i);
  }
}

export function esc(s) {
  return String(s ?? '').replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
}

export const shortId = (id) => String(id || '').replace(/^sha256:/, '').slice(0, 12);

// Docker's units: 1000-based for sizes (as `docker images`), 1024-based for memory.
export function size(n) {
  const u = ['B', 'kB', 'MB', 'GB', 'TB'];
  let i = 0; n = Number(n) || 0;
  while (n >= 1000 && i < u.length - 1) { n /= 1000; i++; }
  return (i ? n.toPrecision(3) : Math.round(n)) + u[i];
}

export function bytes(n) {
  const u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let i = 0; n = Number(n) || 0;
  while (n >= 1024 && i < u.length - 1) { n /= 1024; i++; }
  return (i ? n.toFixed(n < 10 ? 2 : 1) : Math.round(n)) + u[i];
}

export function ago(unixSeconds) {
  const s = Math.max(0, Date.now() / 1000 - unixSeconds);
  if (s < 60) return `${Math.floor(s)} seconds ago`;
  if (s < 3600) return `${Math.floor(s / 60)} minutes ago`;
  if (s < 86400) return `${Math.floor(s / 3600)} hours ago`;
  return `${Math.floor(s / 86400)} days ago`;
}

export const name = (c) => ((c.Names && c.Names[0]) || c.Name || '').replace(/^\//, '');

export function ports(list) {
  return (list || []).map((p) => p.PublicPort ? `${p.IP || ''}${p.IP ? ':' : ''}${p.PublicPort}->${p.PrivatePort}/${p.Type}` : `${p.PrivatePort}/${p.Type}`)
    .filter((v, i, a) => a.indexOf(v) === i).join(', ');
}

export const el = (sel, root = document) => root.querySelector(sel);
export const els = (sel, root = document) => [...root.querySelectorAll(sel)];
