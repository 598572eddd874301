// A small terminal emulator for the exec terminal: the VT100/xterm subset shells and
// common tools use (cursor motion, erase, insert/delete, scroll regions, SGR colours,
// the alternate screen, cursor-position reports), drawn into a <pre>; keys become
// the bytes a terminal sends.

// Colours are the classes f0..f15 (foreground) and b0..b15 (background) in app.css.
const blank = (attr) => ({ ch: ' ', attr });

export class Terminal {
  constructor(pre, rows = 24, cols = 80) {
    this.pre = pre;
    this.onData = () => {};
    this.decoder = new TextDecoder();
    this.resize(rows, cols);
    this.reset();
    pre.tabIndex = 0;
    pre.addEventListener('keydown', (e) => this.key(e));
    pre.addEventListener('paste', (e) => { this.onData(e.clipboardData.getData('text')); e.preventDefault(); });
  }

  reset() {
    this.attr = { fg: 7, bg: -1, bold: false, inverse: false };
    this.x = 0; this.y = 0; this.saved = [0, 0];
    this.top = 0; this.bottom = this.rows - 1;
    this.cursorOn = true;
    this.state = 'ground'; this.params = ''; this.alt = null;
    this.grid = Array.from({ length: this.rows }, () => this.line());
    this.dirty();
  }

  line() { return Array.from({ length: this.cols }, () => blank(this.attr)); }

  resize(rows, cols) {
    const old = this.grid;
    this.rows = rows; this.cols = cols;
    this.attr = this.attr || { fg: 7, bg: -1, bold: false, inverse: false };
    this.grid = Array.from({ length: rows }, (_, r) => {
      const src = old && old[r + Math.max(0, (old.length - rows))];
      return Array.from({ length: cols }, (_, c) => (src && src[c]) || blank(this.attr));
    });
    this.top = 0; this.bottom = rows - 1;
    this.x = Math.min(this.x || 0, cols - 1);
    this.y = Math.min(this.y || 0, rows - 1);
    this.dirty();
  }

  // Output from the container (Uint8Array or string).
  write(data) {
    const text = typeof data === 'string' ? data : this.decoder.decode(data, { stream: true });
    for (const ch of text) this.feed(ch);
    this.dirty();
  }

  // The whole screen as text (for tests and copy).
  text() { return this.grid.map((r) => r.map((c) => c.ch).join('').replace(/\s+$/, '')).join('\n').replace(/\n+$/, ''); }

  feed(ch) {
    const c = ch.charCodeAt(0);
    switch (this.state) {
      case 'esc': return this.escape(ch);
      case 'csi':
        if ((c >= 0x30 && c <= 0x3f) || ch === ' ') { this.params += ch; return; }
        this.state = 'ground';
        return this.csi(ch, this.params);
      case 'osc':
        if (ch === '\x07') this.state = 'ground';
        else if (ch === '\x1b') this.state = 'osc-esc';
        return;
      case 'osc-esc': this.state = 'ground'; return;
      case 'charset': this.state = 'ground'; return;
      default: break;
    }
    if (c < 0x20 || c === 0x7f) return this.control(ch);
    if (this.x >= this.cols) { this.x = 0; this.newline(); }
    this.grid[this.y][this.x] = { ch, attr: { ...this.attr } };
    this.x++;
  }

  control(ch) {
    switch (ch) {
      case '\r': this.x = 0; break;
      case '\n': case '\v': case '\f': this.newline(); break;
      case '\b': this.x = Math.max(0, Math.min(this.x, this.cols) - 1); break;
      case '\t': this.x = Math.min(this.cols - 1, (Math.floor(this.x / 8) + 1) * 8); break;
      case '\x1b': this.state = 'esc'; break;
      default: break; // bell and the rest: nothing to draw
    }
  }

  newline() {
    if (this.y === this.bottom) this.scroll(1);
    else this.y = Math.min(this.rows - 1, this.y + 1);
  }

  scroll(n) { // up by n lines within the region (negative: down)
    for (let i = 0; i < Math.abs(n); i++) {
      if (n > 0) { this.grid.splice(this.top, 1); this.grid.splice(this.bottom, 0, this.line()); }
      else { this.grid.splice(this.bottom, 1); this.grid.splice(this.top, 0, this.line()); }
    }
  }

  escape(ch) {
    this.state = 'ground';
    switch (ch) {
      case '[': this.state = 'csi'; this.params = ''; break;
      case ']': this.state = 'osc'; break;
      case '(': case ')': this.state = 'charset'; break;
      case '7': this.saved = [this.x, this.y]; break;
      case '8': [this.x, this.y] = this.saved; break;
      case 'M': if (this.y === this.top) this.scroll(-1); else this.y = Math.max(0, this.y - 1); break;
      case 'D': this.newline(); break;
      case 'E': this.x = 0; this.newline(); break;
      case 'c': this.reset(); break;
      default: break;
    }
  }

  erase(row, from, to) {
    for (let i = from; i < to; i++) this.grid[row][i] = blank({ ...this.attr, inverse: false });
  }

  csi(cmd, raw) {
    const priv = raw.startsWith('?');
    const p = (priv ? raw.slice(1) : raw).split(';').map((v) => parseInt(v, 10));
    const n = (i = 0, d = 1) => (Number.isNaN(p[i]) || p[i] === undefined || p[i] === 0 ? d : p[i]);
    const clampX = () => { this.x = Math.max(0, Math.min(this.cols - 1, this.x)); };
    const clampY = () => { this.y = Math.max(0, Math.min(this.rows - 1, this.y)); };
    switch (cmd) {
      case 'A': this.y -= n(); clampY(); break;
      case 'B': case 'e': this.y += n(); clampY(); break;
      case 'C': case 'a': this.x += n(); clampX(); break;
      case 'D': this.x = Math.min(this.x, this.cols) - n(); clampX(); break;
      case 'E': this.x = 0; this.y += n(); clampY(); break;
      case 'F': this.x = 0; this.y -= n(); clampY(); break;
      case 'G': case '`': this.x = n() - 1; clampX(); break;
      case 'd': this.y = n() - 1; clampY(); break;
      case 'H': case 'f': this.y = n(0) - 1; this.x = n(1) - 1; clampX(); clampY(); break;
      case 'J': {
        const m = p[0] || 0;
        if (m === 0) { this.erase(this.y, Math.min(this.x, this.cols), this.cols); for (let r = this.y + 1; r < this.rows; r++) this.erase(r, 0, this.cols); }
        if (m === 1) { for (let r = 0; r < this.y; r++) this.erase(r, 0, this.cols); this.erase(this.y, 0, Math.min(this.x + 1, this.cols)); }
        if (m === 2 || m === 3) for (let r = 0; r < this.rows; r++) this.erase(r, 0, this.cols);
        break;
      }
      case 'K': {
        const m = p[0] || 0;
        if (m === 0) this.erase(this.y, Math.min(this.x, this.cols), this.cols);
        if (m === 1) this.erase(this.y, 0, Math.min(this.x + 1, this.cols));
        if (m === 2) this.erase(this.y, 0, this.cols);
        break;
      }
      case 'L': case 'M': {
        if (this.y < this.top || this.y > this.bottom) break;
        const saveTop = this.top; this.top = this.y;
        this.scroll(cmd === 'L' ? -n() : n());
        this.top = saveTop;
        break;
      }
      case 'P': { const row = this.grid[this.y]; row.splice(this.x, n()); while (row.length < this.cols) row.push(blank(this.attr)); break; }
      case '@': { const row = this.grid[this.y]; for (let i = 0; i < n(); i++) row.splice(this.x, 0, blank(this.attr)); row.length = this.cols; break; }
      case 'X': this.erase(this.y, this.x, Math.min(this.cols, this.x + n())); break;
      case 'S': this.scroll(n()); break;
      case 'T': this.scroll(-n()); break;
      case 'r': this.top = n(0) - 1; this.bottom = (p[1] ? p[1] : this.rows) - 1; this.x = 0; this.y = 0; break;
      case 's': this.saved = [this.x, this.y]; break;
      case 'u': [this.x, this.y] = this.saved; break;
      case 'm': this.sgr(raw === '' ? [0] : p.map((v) => (Number.isNaN(v) ? 0 : v))); break;
      case 'n':
        if (p[0] === 6) this.onData(`\x1b[${this.y + 1};${Math.min(this.x, this.cols - 1) + 1}R`);
        else if (p[0] === 5) this.onData('\x1b[0n');
        break;
      case 'c': if (!priv) this.onData('\x1b[?1;2c'); break;
      case 'h': case 'l': {
        const on = cmd === 'h';
        for (const m of p) {
          if (priv && m === 25) this.cursorOn = on;
          if (priv && (m === 1049 || m === 47 || m === 1047)) {
            if (on && !this.alt) { this.alt = { grid: this.grid, x: this.x, y: this.y }; this.grid = Array.from({ length: this.rows }, () => this.line()); }
            if (!on && this.alt) { ({ grid: this.grid, x: this.x, y: this.y } = this.alt); this.alt = null; }
          }
        }
        break;
      }
      default: break;
    }
  }

  sgr(codes) {
    for (let i = 0; i < codes.length; i++) {
      const c = codes[i];
      if (c === 0) this.attr = { fg: 7, bg: -1, bold: false, inverse: false };
      else if (c === 1) this.attr.bold = true;
      else if (c === 22) this.attr.bold = false;
      else if (c === 7) this.attr.inverse = true;
      else if (c === 27) this.attr.inverse = false;
      else if (c >= 30 && c <= 37) this.attr.fg = c - 30;
      else if (c === 39) this.attr.fg = 7;
      else if (c >= 40 && c <= 47) this.attr.bg = c - 40;
      else if (c === 49) this.attr.bg = -1;
      else if (c >= 90 && c <= 97) this.attr.fg = c - 90 + 8;
      else if (c >= 100 && c <= 107) this.attr.bg = c - 100 + 8;
      else if ((c === 38 || c === 48) && codes[i + 1] === 5) { // 256 colours: the first 16 shown, others approximated
        const v = codes[i + 2] % 16;
        if (c === 38) this.attr.fg = v; else this.attr.bg = v;
        i += 2;
      } else if ((c === 38 || c === 48) && codes[i + 1] === 2) i += 4;
    }
  }

  dirty() {
    if (this.pending) return;
    this.pending = true;
    requestAnimationFrame(() => { this.pending = false; this.draw(); });
  }

  draw() {
    const out = [];
    for (let r = 0; r < this.rows; r++) {
      let html = '';
      let run = '';
      let runKey = null;
      const flush = () => { if (run) html += runKey === 'c0' ? escapeHtml(run) : `<span class="${runKey}">${escapeHtml(run)}</span>`; run = ''; };
      for (let c = 0; c < this.cols; c++) {
        const cell = this.grid[r][c];
        let { fg, bg } = cell.attr;
        if (cell.attr.bold && fg < 8) fg += 8;
        let inv = cell.attr.inverse;
        if (this.cursorOn && r === this.y && c === Math.min(this.x, this.cols - 1)) inv = !inv;
        if (inv) [fg, bg] = [bg < 0 ? 0 : bg, fg];
        const key = fg === 7 && bg < 0 ? 'c0' : `f${fg}${bg >= 0 ? ` b${bg}` : ''}`;
        if (key !== runKey) { flush(); runKey = key; }
        run += cell.ch;
      }
      flush();
      out.push(html);
    }
    this.pre.innerHTML = out.join('\n');
  }

  key(e) {
    if (e.metaKey) return;
    const map = { Enter: '\r', Backspace: '\x7f', Tab: '\t', Escape: '\x1b', ArrowUp: '\x1b[A', ArrowDown: '\x1b[B', ArrowRight: '\x1b[C',
      ArrowLeft: '\x1b[D', Home: '\x1b[H', End: '\x1b[F', Delete: '\x1b[3~', PageUp: '\x1b[5~', PageDown: '\x1b[6~', Insert: '\x1b[2~' };
    let s = map[e.key];
    if (!s && e.key.length === 1) {
      if (e.ctrlKey && !e.altKey) {
        const k = e.key.toLowerCase();
        if (k >= 'a' && k <= 'z') s = String.fromCharCode(k.charCodeAt(0) - 96);
        else if ('@[\\]^_'.includes(e.key)) s = String.fromCharCode('@[\\]^_'.indexOf(e.key) === 0 ? 0 : 27 + '[\\]^_'.indexOf(e.key));
        else return;
      } else {
        s = (e.altKey ? '\x1b' : '') + e.key;
      }
    }
    if (!s) return;
    e.preventDefault();
    this.onData(s);
  }
}

function escapeHtml(s) { return s.replace(/[&<>]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;' }[c])); }
