// One container: its facts, live graphs (CPU, memory, network, block I/O), logs that
// follow with a search, its processes, an exec terminal, and the raw inspect.

import { api, stream, Demux, esc, shortId, bytes, el, els } from './api.js';
import { lineChart } from './charts.js';
import { rates } from './live.js';
import { Terminal } from './term.js';
import { containerAction } from './pages.js';

const MAX_LINES = 5000;

export function container(view, ctx) {
  const id = ctx.param;
  view.innerHTML = `<div class="bar"><h1 id="cname">…</h1><span id="cstate" class="state"></span><span class="muted mono">${esc(shortId(id))}</span>
    <span class="spacer"></span><span id="cactions" class="actions"></span></div>
    <nav class="tabs"><a data-tab="overview">Overview</a><a data-tab="logs">Logs</a><a data-tab="processes">Processes</a>
    <a data-tab="terminal">Terminal</a><a data-tab="inspect">Inspect</a></nav>
    <section data-tab="overview"><div id="facts" class="kv"></div><div id="graphs" class="graphs"></div></section>
    <section data-tab="logs"><div class="bar"><label><input id="follow" type="checkbox" checked> Follow</label>
      <input id="log-search" type="search" placeholder="Search"><span id="log-count" class="muted"></span></div><pre id="logs" class="logs"></pre></section>
    <section data-tab="processes"><div class="bar"><button id="ps-refresh">Refresh</button><span class="muted">refreshed every 5 s while shown</span></div>
      <table id="processes" class="list"><thead></thead><tbody></tbody></table></section>
    <section data-tab="terminal"><div class="bar"><input id="term-cmd" value="sh"><button id="term-connect">Connect</button>
      <span id="term-status" class="muted"></span></div><pre id="term" class="term"></pre></section>
    <section data-tab="inspect"><pre id="inspect" class="json"></pre></section>`;
  let info = null;
  let timers = [];
  const offs = [];
  const logCtl = new AbortController();
  let termSocket = null;

  // ------------------------------------------------------------ tabs
  function show(tab) {
    els('nav.tabs a', view).forEach((a) => a.classList.toggle('on', a.dataset.tab === tab));
    els('section[data-tab]', view).forEach((s) => { s.hidden = s.dataset.tab !== tab; });
    if (tab === 'processes') processes();
    if (tab === 'logs') el('#logs', view).scrollTop = 1e9;
    if (tab === 'terminal' && !termSocket) el('#term', view).focus();
    history.replaceState(null, '', `#/container/${id}/${tab}`);
  }
  el('nav.tabs', view).onclick = (e) => { const a = e.target.closest('a[data-tab]'); if (a) show(a.dataset.tab); };

  // ------------------------------------------------------------ facts
  async function load() {
    info = await api(`/containers/${id}/json`);
    const s = info.State;
    const label = info.Name.replace(/^\//, '');
    el('#cname', view).textContent = label;
    const st = el('#cstate', view);
    st.textContent = s.Status;
    st.className = `state ${s.Running ? (s.Paused ? 'warn' : 'ok') : 'off'}`;
    const running = s.Running || s.Restarting;
    el('#cactions', view).innerHTML = `${running ? '<button data-act="stop">Stop</button>' : '<button data-act="start">Start</button>'}<button data-act="restart">Restart</button><button data-act="remove" class="danger">Remove</button>`;
    const nets = Object.entries((info.NetworkSettings && info.NetworkSettings.Networks) || {}).map(([n, v]) => `${n}: ${v.IPAddress || '-'}`).join(', ');
    // The ports as bound (an ephemeral host port is only known there).
    const bound = (info.NetworkSettings && info.NetworkSettings.Ports) || {};
    const pb = Object.entries(bound).map(([p, b]) => (b && b.length ? `${b.map((x) => `${x.HostIp || ''}${x.HostIp ? ':' : ''}${x.HostPort}`).join(', ')}->${p}` : p)).join(', ');
    const mounts = (info.Mounts || []).map((m) => `${m.Name || m.Source} → ${m.Destination}${m.RW ? '' : ' (ro)'}`).join(', ');
    const facts = [
      ['ID', info.Id], ['Image', `${info.Config.Image} (${shortId(info.Image)})`], ['Command', [info.Path, ...(info.Args || [])].join(' ')],
      ['Created', info.Created], ['Started', s.StartedAt], ['State', `${s.Status}${s.Running ? ` (pid ${s.Pid})` : ` (exit ${s.ExitCode})`}`],
      ['Restart policy', `${info.HostConfig.RestartPolicy.Name || 'no'} (restarted ${info.RestartCount})`], ['Networks', nets], ['Ports', pb],
      ['Mounts', mounts || 'none'], ['Log driver', info.HostConfig.LogConfig.Type], ['TTY', info.Config.Tty ? 'yes' : 'no'],
    ];
    if (s.Health) facts.push(['Health', `${s.Health.Status} (failing streak ${s.Health.FailingStreak})`]);
    el('#facts', view).innerHTML = facts.map(([k, v]) => `<b>${esc(k)}</b><span class="mono wrap">${esc(v)}</span>`).join('');
    el('#inspect', view).textContent = JSON.stringify(info, null, 2);
    return info;
  }
  el('#cactions', view).onclick = async (e) => {
    const b = e.target.closest('button[data-act]');
    if (!b) return;
    const ok = await containerAction(ctx, id, info ? info.Name.replace(/^\//, '') : id, b.dataset.act);
    if (ok && b.dataset.act === 'remove') location.hash = '#/containers';
  };

  // ------------------------------------------------------------ graphs
  const charts = {
    cpu: lineChart('CPU', (v) => `${v.toFixed(1)}%`, 5),
    mem: lineChart('Memory', bytes, 1 << 20),
    net: lineChart('Network', (v) => `${bytes(v)}/s`, 1024),
    blk: lineChart('Block I/O', (v) => `${bytes(v)}/s`, 1024),
  };
  Object.values(charts).forEach((c) => el('#graphs', view).appendChild(c.node));
  function drawGraphs() {
    const h = ctx.live.samples(info ? info.Id : id);
    charts.cpu.set([h.map((s) => s.cpu)]);
    charts.mem.set([h.map((s) => s.mem)], [h.length ? `{} of ${bytes(h[h.length - 1].limit)}` : '{}']);
    charts.net.set([rates(h, 'rx'), rates(h, 'tx')], ['rx', 'tx']);
    charts.blk.set([rates(h, 'br'), rates(h, 'bw')], ['read', 'write']);
  }
  offs.push(ctx.live.on('stats', drawGraphs));

  // ------------------------------------------------------------ logs
  const pre = el('#logs', view);
  const search = el('#log-search', view);
  const lines = [];
  let partial = ['', '', ''];
  function matches(line) { return !search.value || line.toLowerCase().includes(search.value.toLowerCase()); }
  function appendLine(streamNo, line) {
    lines.push([streamNo, line]);
    if (lines.length > MAX_LINES) { lines.shift(); if (pre.firstChild) pre.firstChild.remove(); }
    const div = document.createElement('div');
    div.className = streamNo === 2 ? 'err' : 'out';
    div.textContent = line;
    div.hidden = !matches(line);
    pre.appendChild(div);
  }
  function onText(streamNo, text) {
    const parts = (partial[streamNo] + text).split('\n');
    partial[streamNo] = parts.pop();
    parts.forEach((l) => appendLine(streamNo, l.replace(/\r$/, '')));
    el('#log-count', view).textContent = `${lines.length} lines`;
    if (el('#follow', view).checked) pre.scrollTop = pre.scrollHeight;
  }
  let streaming = false;
  // Follows until the container stops; a start follows again from there.
  async function followLogs(tty, tail) {
    streaming = true;
    const decoders = [null, new TextDecoder(), new TextDecoder()];
    const demux = new Demux((s, b) => onText(s === 2 ? 2 : 1, decoders[s === 2 ? 2 : 1].decode(b, { stream: true })));
    try {
      await stream(`/containers/${id}/logs?stdout=1&stderr=1&follow=1&tail=${tail}`, (chunk) => {
        if (tty) onText(1, decoders[1].decode(chunk, { stream: true })); else demux.push(chunk);
      }, logCtl.signal);
    } catch (e) {
      if (e.name !== 'AbortError') appendLine(2, `[${e.message}]`);
    }
    streaming = false;
  }
  search.oninput = () => {
    const kids = pre.children;
    for (let i = 0; i < kids.length; i++) kids[i].hidden = !matches(kids[i].textContent);
  };
  el('#follow', view).onchange = (e) => { if (e.target.checked) pre.scrollTop = pre.scrollHeight; };

  // ------------------------------------------------------------ processes
  async function processes() {
    if (el('section[data-tab=processes]', view).hidden) return;
    try {
      const top = await api(`/containers/${id}/top`);
      el('#processes thead', view).innerHTML = `<tr>${top.Titles.map((t) => `<th>${esc(t)}</th>`).join('')}</tr>`;
      el('#processes tbody', view).innerHTML = top.Processes.map((p) => `<tr>${p.map((v) => `<td class="mono">${esc(v)}</td>`).join('')}</tr>`).join('');
    } catch (e) {
      el('#processes tbody', view).innerHTML = `<tr><td class="muted">${esc(e.message)}</td></tr>`;
    }
  }
  el('#ps-refresh', view).onclick = processes;
  timers.push(setInterval(processes, 5000));

  // ------------------------------------------------------------ terminal
  const term = new Terminal(el('#term', view), 24, 100);
  function connect() {
    if (termSocket) { termSocket.close(); return; }
    const proto = location.protocol === 'https:' ? 'wss' : 'ws';
    const cmd = encodeURIComponent(el('#term-cmd', view).value || 'sh');
    const ws = new WebSocket(`${proto}://${location.host}/ui/exec?id=${encodeURIComponent(id)}&cmd=${cmd}&rows=${term.rows}&cols=${term.cols}`);
    ws.binaryType = 'arraybuffer';
    termSocket = ws;
    const status = el('#term-status', view);
    status.textContent = 'connecting…';
    ws.onopen = () => { status.textContent = 'connected'; el('#term-connect', view).textContent = 'Disconnect'; term.pre.focus(); };
    ws.onmessage = (m) => term.write(new Uint8Array(m.data));
    ws.onclose = (e) => {
      status.textContent = e.reason ? `closed (${e.reason})` : 'closed';
      el('#term-connect', view).textContent = 'Connect';
      termSocket = null;
    };
    term.onData = (s) => { if (ws.readyState === WebSocket.OPEN) ws.send(new TextEncoder().encode(s)); };
  }
  el('#term-connect', view).onclick = connect;

  // ------------------------------------------------------------ live
  const offEvent = ctx.live.on('event', (ev) => {
    if (ev.Type !== 'container' || !info || ev.Actor.ID !== info.Id) return;
    if (ev.Action === 'destroy') { el('#cstate', view).textContent = 'removed'; return; }
    if (['start', 'die', 'stop', 'pause', 'unpause', 'restart', 'rename', 'kill'].includes(ev.Action)) load().catch(() => {});
    if (ev.Action === 'start' && !streaming && !logCtl.signal.aborted) followLogs(info.Config.Tty, 0);
  });
  offs.push(offEvent);

  load().then((c) => {
    ctx.live.watch([c.Id]);
    followLogs(c.Config.Tty, 1000);
  }).catch((e) => { el('#cname', view).textContent = e.message; });
  show(ctx.sub || 'overview');

  return {
    destroy() {
      offs.forEach((f) => f());
      timers.forEach(clearInterval);
      timers = [];
      logCtl.abort();
      if (termSocket) termSocket.close();
    },
  };
}
