// The page's one live channel (/ui/live): the daemon's events as they happen and, once
// a second, the stats of the containers watched. Keeps the last minute of samples per
// container for the sparklines and graphs; reconnects by itself.

const KEEP = 60;

export class Live {
  constructor() {
    this.handlers = { event: [], stats: [], lagged: [], open: [] };
    this.history = new Map(); // id -> [{t, cpu, mem, limit, rx, tx, br, bw, pids}]
    this.watching = null;
    this.delay = 500;
    this.connect();
  }

  connect() {
    const proto = location.protocol === 'https:' ? 'wss' : 'ws';
    this.ws = new WebSocket(`${proto}://${location.host}/ui/live`);
    this.ws.onopen = () => {
      this.delay = 500;
      if (this.watching !== null) this.send({ watch: this.watching });
      // Handlers learn whether this is a reconnection (events may have been missed).
      const again = this.opened > 0;
      this.opened = (this.opened || 0) + 1;
      this.handlers.open.forEach((f) => f(again));
    };
    this.ws.onmessage = (m) => this.receive(JSON.parse(m.data));
    this.ws.onclose = () => {
      setTimeout(() => this.connect(), this.delay);
      this.delay = Math.min(this.delay * 2, 10000);
    };
  }

  send(obj) {
    if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(obj));
  }

  // 'all', a list of container IDs, or null for none.
  watch(what) {
    this.watching = what;
    this.send({ watch: what });
  }

  on(kind, f) {
    this.handlers[kind].push(f);
    return () => { this.handlers[kind] = this.handlers[kind].filter((g) => g !== f); };
  }

  receive(msg) {
    if (msg.type === 'event') {
      this.handlers.event.forEach((f) => f(msg.event));
    } else if (msg.type === 'stats') {
      const t = Date.now();
      for (const s of msg.stats) {
        let h = this.history.get(s.id);
        if (!h) { h = []; this.history.set(s.id, h); }
        h.push({ t, ...s });
        if (h.length > KEEP) h.shift();
      }
      this.handlers.stats.forEach((f) => f(msg.stats));
    } else if (msg.type === 'lagged') {
      this.handlers.lagged.forEach((f) => f());
    }
  }

  samples(id) { return this.history.get(id) || []; }
}

// Per-second rates from running totals (bytes/s), for network and block graphs.
export function rates(samples, key) {
  const out = [];
  for (let i = 1; i < samples.length; i++) {
    const dt = (samples[i].t - samples[i - 1].t) / 1000 || 1;
    out.push(Math.max(0, (samples[i][key] - samples[i - 1][key]) / dt));
  }
  return out;
}
