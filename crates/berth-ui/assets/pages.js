// The list pages: containers, images, networks, volumes, events and the host. Each
// takes the view element and the page context, draws, subscribes to what changes,
// and returns a destroy() that unsubscribes.

import { api, filters, esc, shortId, size, bytes, ago, name, ports, el, els } from './api.js';
import { sparkline, bars } from './charts.js';

const stateClass = (s) => ({ running: 'ok', paused: 'warn', restarting: 'warn', exited: 'off', created: 'off', dead: 'bad', removing: 'warn' }[s] || 'off');

function actionsFor(state) {
  const running = state === 'running' || state === 'restarting' || state === 'paused';
  return `${running ? '' : '<button data-act="start">Start</button>'}${running ? '<button data-act="stop">Stop</button>' : ''}` +
    '<button data-act="restart">Restart</button><button data-act="remove" class="danger">Remove</button>';
}

// Start, stop, restart or remove a container, asking first for all but start.
export async function containerAction(ctx, id, label, act) {
  const questions = {
    stop: [`Stop ${label}?`, 'It gets SIGTERM, then SIGKILL after its stop timeout.'],
    restart: [`Restart ${label}?`, 'It is stopped, then started again.'],
    remove: [`Remove ${label}?`, 'Its writable layer and log go with it.'],
  };
  let query = '';
  if (questions[act]) {
    const checks = act === 'remove' ? [['force', 'Stop it first if it is running'], ['v', 'Also remove its anonymous volumes']] : [];
    const r = await ctx.confirm(questions[act][0], questions[act][1], checks);
    if (!r) return false;
    if (act === 'remove') query = `?force=${r.force ? 1 : 0}&v=${r.v ? 1 : 0}`;
  }
  try {
    if (act === 'remove') await api(`/containers/${id}${query}`, { method: 'DELETE' });
    else await api(`/containers/${id}/${act}`, { method: 'POST' });
    ctx.toast(`${act === 'remove' ? 'Removed' : act === 'stop' ? 'Stopped' : act === 'start' ? 'Started' : 'Restarted'} ${label}`);
    return true;
  } catch (e) {
    ctx.toast(e.message, true);
    return false;
  }
}

// ---------------------------------------------------------------- containers

export function containers(view, ctx) {
  view.innerHTML = `<div class="bar"><h1>Containers</h1><span id="count" class="muted"></span>
    <input id="filter" type="search" placeholder="Filter by name or image">
    <label><input id="all" type="checkbox" checked> Stopped too</label></div>
    <table id="containers" class="list"><thead><tr><th>Name</th><th>State</th><th>Image</th><th>Ports</th><th>Status</th>
    <th>CPU</th><th>Memory</th><th></th></tr></thead><tbody></tbody></table>`;
  const tbody = el('tbody', view);
  const rows = new Map();
  const filterBox = el('#filter', view);
  const allBox = el('#all', view);

  function rowHtml(c) {
    return `<td class="name"><a href="#/container/${c.Id}">${esc(name(c))}</a><div class="muted mono">${shortId(c.Id)}</div></td>
      <td><span class="state ${stateClass(c.State)}">${esc(c.State)}</span></td>
      <td class="image">${esc(c.Image)}</td><td class="ports mono">${esc(ports(c.Ports))}</td>
      <td class="status">${esc(c.Status)}</td><td class="cpu"><span class="v"></span></td><td class="mem"><span class="v"></span></td>
      <td class="actions">${actionsFor(c.State)}</td>`;
  }

  function visible(c) {
    const f = filterBox.value.trim().toLowerCase();
    const shown = allBox.checked || c.State === 'running' || c.State === 'paused' || c.State === 'restarting';
    return shown && (!f || name(c).toLowerCase().includes(f) || c.Image.toLowerCase().includes(f));
  }

  function attachCharts(r) {
    r.cpu = sparkline(); r.mem = sparkline();
    el('.cpu', r.tr).prepend(r.cpu.node);
    el('.mem', r.tr).prepend(r.mem.node);
    drawStats(r);
  }

  function upsert(c, atTop) {
    let r = rows.get(c.Id);
    if (!r) {
      const tr = document.createElement('tr');
      tr.dataset.id = c.Id;
      r = { tr, c };
      rows.set(c.Id, r);
      if (atTop) tbody.prepend(tr); else tbody.appendChild(tr);
    }
    r.c = c;
    r.tr.innerHTML = rowHtml(c);
    r.tr.dataset.name = name(c);
    r.tr.dataset.state = c.State;
    r.tr.hidden = !visible(c);
    attachCharts(r);
  }

  function drawStats(r) {
    const h = ctx.live.samples(r.c.Id);
    if (!h.length || r.c.State !== 'running') return;
    const last = h[h.length - 1];
    r.cpu.set(h.map((s) => s.cpu), Math.max(100, ...h.map((s) => s.cpu)));
    r.mem.set(h.map((s) => s.mem), last.limit);
    el('.cpu .v', r.tr).textContent = `${last.cpu.toFixed(1)}%`;
    el('.mem .v', r.tr).textContent = bytes(last.mem);
  }

  function count() {
    const all = [...rows.values()];
    el('#count', view).textContent = `${all.filter((r) => r.c.State === 'running').length} running, ${all.length} in all`;
  }

  function fill(list) {
    tbody.textContent = '';
    rows.clear();
    // One string for the whole table, then the sparklines: fast for hundreds.
    tbody.innerHTML = list.map((c) => `<tr data-id="${c.Id}" data-name="${esc(name(c))}" data-state="${esc(c.State)}">${rowHtml(c)}</tr>`).join('');
    for (const tr of tbody.children) {
      const c = list.find((x) => x.Id === tr.dataset.id);
      const r = { tr, c };
      rows.set(c.Id, r);
      tr.hidden = !visible(c);
      attachCharts(r);
    }
    count();
  }

  async function reload() {
    fill(await api('/containers/json?all=1'));
  }

  async function refresh(id) {
    const list = await api(`/containers/json?all=1&filters=${filters({ id: [id] })}`);
    if (list.length) upsert(list[0], !rows.has(id));
    else if (rows.has(id)) { rows.get(id).tr.remove(); rows.delete(id); }
    count();
  }

  if (ctx.boot && ctx.boot.containers) { fill(ctx.boot.containers); ctx.boot.containers = null; } else reload();

  filterBox.oninput = allBox.onchange = () => rows.forEach((r) => { r.tr.hidden = !visible(r.c); });
  tbody.onclick = async (e) => {
    const b = e.target.closest('button[data-act]');
    if (!b) return;
    const tr = b.closest('tr');
    b.disabled = true;
    await containerAction(ctx, tr.dataset.id, tr.dataset.name, b.dataset.act);
    b.disabled = false;
  };
  ctx.live.watch('all');
  const offs = [
    ctx.live.on('stats', (stats) => stats.forEach((s) => { const r = rows.get(s.id); if (r) drawStats(r); })),
    ctx.live.on('event', (ev) => { if (ev.Type === 'container' && !ev.Action.startsWith('exec_') && ev.Action !== 'top') refresh(ev.Actor.ID).catch(() => {}); }),
    ctx.live.on('lagged', () => reload()),
    ctx.live.on('open', (again) => { if (again) reload(); }),
  ];
  // "Up 3 minutes" is the daemon's text: refreshed once a minute, not per second.
  const timer = setInterval(() => reload().catch(() => {}), 60000);
  return { destroy() { offs.forEach((f) => f()); clearInterval(timer); } };
}

// ---------------------------------------------------------------- images

export function images(view, ctx) {
  view.innerHTML = `<div class="bar"><h1>Images</h1><span id="count" class="muted"></span>
    <button id="prune" class="danger">Prune…</button></div>
    <table id="images" class="list"><thead><tr><th>Repository:Tag</th><th>ID</th><th>Size</th><th>Created</th><th>Containers</th><th></th></tr></thead>
    <tbody></tbody></table><div id="detail"></div>`;
  const tbody = el('tbody', view);
  async function load() {
    const list = await api('/images/json');
    el('#count', view).textContent = `${list.length} images`;
    tbody.innerHTML = list.map((i) => `<tr data-id="${i.Id}"><td class="name"><a href="#/images/${encodeURIComponent(i.Id)}">${esc((i.RepoTags && i.RepoTags.length ? i.RepoTags : ['<none>:<none>']).join(', '))}</a></td>
      <td class="mono">${shortId(i.Id)}</td><td>${size(i.Size)}</td><td>${ago(i.Created)}</td><td>${i.Containers >= 0 ? i.Containers : ''}</td>
      <td class="actions"><button data-act="remove" class="danger">Remove</button></td></tr>`).join('');
  }
  async function detail(id) {
    const [img, hist] = await Promise.all([api(`/images/${encodeURIComponent(id)}/json`), api(`/images/${encodeURIComponent(id)}/history`)]);
    const layers = (img.RootFS && img.RootFS.Layers) || [];
    el('#detail', view).innerHTML = `<h2>${esc((img.RepoTags || [])[0] || shortId(img.Id))}</h2>
      <div class="kv"><b>ID</b><span class="mono">${esc(img.Id)}</span><b>Size</b><span>${size(img.Size)}</span>
      <b>Created</b><span>${esc(img.Created)}</span><b>Command</b><span class="mono">${esc(JSON.stringify(img.Config && img.Config.Cmd))}</span>
      <b>Layers</b><span>${layers.length}</span></div>
      <h3>Layers</h3><ol class="mono layers">${layers.map((l) => `<li>${esc(l)}</li>`).join('')}</ol>
      <h3>History</h3><table class="list history"><thead><tr><th>Created</th><th>Created by</th><th>Size</th></tr></thead><tbody>
      ${hist.map((h) => `<tr><td>${ago(h.Created)}</td><td class="mono wrap">${esc(h.CreatedBy)}</td><td>${size(h.Size)}</td></tr>`).join('')}</tbody></table>`;
  }
  tbody.onclick = async (e) => {
    const b = e.target.closest('button[data-act=remove]');
    if (!b) return;
    const id = b.closest('tr').dataset.id;
    const r = await ctx.confirm(`Remove image ${shortId(id)}?`, 'Its tags are removed; its layers go when no other image uses them.', [['force', 'Force (also when containers use it)']]);
    if (!r) return;
    try { await api(`/images/${id}?force=${r.force ? 1 : 0}`, { method: 'DELETE' }); ctx.toast('Image removed'); } catch (err) { ctx.toast(err.message, true); }
    load();
  };
  el('#prune', view).onclick = async () => {
    const r = await ctx.confirm('Prune images?', 'Dangling images (no tag, no child) are removed.', [['all', 'All images without a container, tagged or not']]);
    if (!r) return;
    try {
      const out = await api(`/images/prune${r.all ? `?filters=${filters({ dangling: ['false'] })}` : ''}`, { method: 'POST' });
      ctx.toast(`Reclaimed ${size(out.SpaceReclaimed)}`);
    } catch (err) { ctx.toast(err.message, true); }
    load();
  };
  const off = ctx.live.on('event', (ev) => { if (ev.Type === 'image') load(); });
  load().then(() => { if (ctx.param) detail(decodeURIComponent(ctx.param)).catch((e) => ctx.toast(e.message, true)); });
  return { destroy() { off(); } };
}

// ---------------------------------------------------------------- networks and volumes

export function networks(view, ctx) {
  view.innerHTML = `<div class="bar"><h1>Networks</h1></div><table id="networks" class="list"><thead><tr><th>Name</th><th>ID</th><th>Driver</th>
    <th>Subnet</th><th>Gateway</th><th>Containers</th><th></th></tr></thead><tbody></tbody></table>`;
  const tbody = el('tbody', view);
  async function load() {
    const list = await api('/networks');
    const full = await Promise.all(list.map((n) => api(`/networks/${n.Id}`).catch(() => n)));
    tbody.innerHTML = full.map((n) => {
      const cfg = (n.IPAM && n.IPAM.Config) || [];
      const members = Object.values(n.Containers || {}).map((c) => c.Name).join(', ');
      const builtin = ['bridge', 'host', 'none'].includes(n.Name);
      return `<tr data-id="${n.Id}"><td class="name">${esc(n.Name)}</td><td class="mono">${shortId(n.Id)}</td><td>${esc(n.Driver)}</td>
        <td class="mono">${esc(cfg.map((c) => c.Subnet).join(', '))}</td><td class="mono">${esc(cfg.map((c) => c.Gateway).join(', '))}</td>
        <td>${esc(members)}</td><td class="actions">${builtin ? '' : '<button data-act="remove" class="danger">Remove</button>'}</td></tr>`;
    }).join('');
  }
  tbody.onclick = async (e) => {
    const b = e.target.closest('button[data-act=remove]');
    if (!b) return;
    const tr = b.closest('tr');
    if (!(await ctx.confirm(`Remove network ${el('.name', tr).textContent}?`, 'Containers must be disconnected first.'))) return;
    try { await api(`/networks/${tr.dataset.id}`, { method: 'DELETE' }); ctx.toast('Network removed'); } catch (err) { ctx.toast(err.message, true); }
    load();
  };
  const off = ctx.live.on('event', (ev) => { if (ev.Type === 'network') load(); });
  load();
  return { destroy() { off(); } };
}

export function volumes(view, ctx) {
  view.innerHTML = `<div class="bar"><h1>Volumes</h1><button id="prune" class="danger">Prune…</button></div>
    <table id="volumes" class="list"><thead><tr><th>Name</th><th>Driver</th><th>Mountpoint</th><th>Size</th><th>Used by</th><th></th></tr></thead><tbody></tbody></table>`;
  const tbody = el('tbody', view);
  async function load() {
    const [vols, df] = await Promise.all([api('/volumes'), api('/system/df?type=volume').catch(() => ({}))]);
    const usage = new Map(((df && df.Volumes) || []).map((v) => [v.Name, v.UsageData || {}]));
    tbody.innerHTML = (vols.Volumes || []).map((v) => {
      const u = usage.get(v.Name) || {};
      return `<tr data-name="${esc(v.Name)}"><td class="name mono">${esc(v.Name)}</td><td>${esc(v.Driver)}</td><td class="mono">${esc(v.Mountpoint)}</td>
      <td>${u.Size >= 0 ? size(u.Size) : ''}</td><td>${u.RefCount >= 0 ? u.RefCount : ''}</td>
      <td class="actions"><button data-act="remove" class="danger">Remove</button></td></tr>`;
    }).join('');
  }
  tbody.onclick = async (e) => {
    const b = e.target.closest('button[data-act=remove]');
    if (!b) return;
    const n = b.closest('tr').dataset.name;
    if (!(await ctx.confirm(`Remove volume ${n}?`, 'Its data is deleted.'))) return;
    try { await api(`/volumes/${encodeURIComponent(n)}`, { method: 'DELETE' }); ctx.toast('Volume removed'); } catch (err) { ctx.toast(err.message, true); }
    load();
  };
  el('#prune', view).onclick = async () => {
    const r = await ctx.confirm('Prune volumes?', 'Anonymous volumes no container uses are deleted.', [['all', 'Named volumes too']]);
    if (!r) return;
    try {
      const out = await api(`/volumes/prune${r.all ? `?filters=${filters({ all: ['true'] })}` : ''}`, { method: 'POST' });
      ctx.toast(`Reclaimed ${size(out.SpaceReclaimed)}`);
    } catch (err) { ctx.toast(err.message, true); }
    load();
  };
  const off = ctx.live.on('event', (ev) => { if (ev.Type === 'volume') load(); });
  load();
  return { destroy() { off(); } };
}

// ---------------------------------------------------------------- events

export function events(view, ctx) {
  view.innerHTML = `<div class="bar"><h1>Events</h1><input id="filter" type="search" placeholder="Filter: type, action or name">
    <label><input id="pause" type="checkbox"> Pause</label></div>
    <table id="events" class="list"><thead><tr><th>Time</th><th>Type</th><th>Action</th><th>Actor</th><th>Attributes</th></tr></thead><tbody></tbody></table>`;
  const tbody = el('tbody', view);
  const filterBox = el('#filter', view);
  const matches = (tr) => !filterBox.value || tr.textContent.toLowerCase().includes(filterBox.value.toLowerCase());
  function add(ev, top) {
    if (el('#pause', view).checked && top) return;
    const a = ev.Actor || {};
    const attrs = Object.entries(a.Attributes || {}).filter(([k]) => k !== 'name').map(([k, v]) => `${k}=${v}`).join(', ');
    const tr = document.createElement('tr');
    tr.className = `ev ${esc(ev.Type)}`;
    const t = new Date((ev.timeNano || ev.time * 1e9) / 1e6);
    tr.innerHTML = `<td class="mono">${t.toLocaleTimeString()}</td><td>${esc(ev.Type)}</td><td class="action">${esc(ev.Action)}</td>
      <td>${esc((a.Attributes && a.Attributes.name) || shortId(a.ID))}</td><td class="muted wrap">${esc(attrs)}</td>`;
    tr.hidden = !matches(tr);
    if (top) tbody.prepend(tr); else tbody.appendChild(tr);
    while (tbody.children.length > 1000) tbody.lastChild.remove();
  }
  filterBox.oninput = () => els('tr', tbody).forEach((tr) => { tr.hidden = !matches(tr); });
  // The last hour from the daemon's history, newest first; then live.
  const now = Math.floor(Date.now() / 1000);
  const ctl = new AbortController();
  fetch(`/api/events?since=${now - 3600}&until=${now}`, { headers: { 'X-Berth-UI': '1' }, signal: ctl.signal })
    .then((r) => r.text())
    .then((t) => t.split('\n').filter(Boolean).map((l) => JSON.parse(l)).reverse().forEach((ev) => add(ev, false)))
    .catch(() => {});
  const off = ctx.live.on('event', (ev) => add(ev, true));
  return { destroy() { off(); ctl.abort(); } };
}

// ---------------------------------------------------------------- host

export function host(view, ctx) {
  view.innerHTML = '<div class="bar"><h1>Host</h1></div><div id="info" class="kv"></div><h2>Disk usage</h2><div id="df-chart"></div><div id="df"></div>';
  async function load() {
    const [info, ver, df] = await Promise.all([api('/info'), api('/version'), api('/system/df')]);
    const facts = [
      ['Host', info.Name], ['Operating system', info.OperatingSystem], ['Kernel', info.KernelVersion], ['CPUs', info.NCPU],
      ['Memory', bytes(info.MemTotal)], ['Engine', `berth ${ver.Version} (API ${ver.ApiVersion})`], ['Storage driver', info.Driver],
      ['Cgroups', `${info.CgroupVersion === '2' ? 'v2' : 'v1'} (${info.CgroupDriver})`], ['Containers', `${info.Containers} (${info.ContainersRunning} running, ${info.ContainersPaused} paused, ${info.ContainersStopped} stopped)`],
      ['Images', info.Images], ['Data root', info.DockerRootDir], ['Default runtime', info.DefaultRuntime],
    ];
    el('#info', view).innerHTML = facts.map(([k, v]) => `<b>${esc(k)}</b><span>${esc(v)}</span>`).join('');
    const imgs = df.Images || [], cs = df.Containers || [], vols = df.Volumes || [], cache = df.BuildCache || [];
    const used = new Set(cs.map((c) => c.ImageID));
    const imgTotal = df.LayersSize || 0;
    const imgReclaim = imgs.filter((i) => !used.has(i.Id)).reduce((a, i) => a + (i.Size - (i.SharedSize > 0 ? i.SharedSize : 0)), 0);
    const cTotal = cs.reduce((a, c) => a + (c.SizeRw || 0), 0);
    const cReclaim = cs.filter((c) => c.State !== 'running').reduce((a, c) => a + (c.SizeRw || 0), 0);
    const vTotal = vols.reduce((a, v) => a + Math.max(0, (v.UsageData || {}).Size || 0), 0);
    const vReclaim = vols.filter((v) => ((v.UsageData || {}).RefCount || 0) === 0).reduce((a, v) => a + Math.max(0, v.UsageData.Size || 0), 0);
    const bTotal = cache.reduce((a, b) => a + (b.Size || 0), 0);
    const bReclaim = cache.filter((b) => !b.InUse).reduce((a, b) => a + (b.Size || 0), 0);
    const chart = el('#df-chart', view);
    chart.textContent = '';
    chart.appendChild(bars([
      { label: `Images (${imgs.length})`, total: imgTotal, part: Math.min(imgReclaim, imgTotal), partLabel: 'reclaimable' },
      { label: `Containers (${cs.length})`, total: cTotal, part: cReclaim, partLabel: 'reclaimable' },
      { label: `Local volumes (${vols.length})`, total: vTotal, part: vReclaim, partLabel: 'reclaimable' },
      { label: `Build cache (${cache.length})`, total: bTotal, part: bReclaim, partLabel: 'reclaimable' },
    ], size));
    el('#df', view).innerHTML = `<h3>Images</h3><table class="list"><thead><tr><th>Repository:Tag</th><th>ID</th><th>Size</th><th>Shared</th><th>Unique</th><th>Containers</th></tr></thead><tbody>
      ${imgs.map((i) => `<tr><td>${esc((i.RepoTags || ['<none>'])[0])}</td><td class="mono">${shortId(i.Id)}</td><td>${size(i.Size)}</td><td>${size(Math.max(0, i.SharedSize))}</td><td>${size(i.Size - Math.max(0, i.SharedSize))}</td><td>${Math.max(0, i.Containers)}</td></tr>`).join('')}</tbody></table>
      <h3>Containers</h3><table class="list"><thead><tr><th>Name</th><th>Image</th><th>Size</th><th>State</th></tr></thead><tbody>
      ${cs.map((c) => `<tr><td>${esc(name(c))}</td><td>${esc(c.Image)}</td><td>${size(c.SizeRw || 0)}</td><td>${esc(c.State)}</td></tr>`).join('')}</tbody></table>
      <h3>Local volumes</h3><table class="list"><thead><tr><th>Name</th><th>Links</th><th>Size</th></tr></thead><tbody>
      ${vols.map((v) => `<tr><td class="mono">${esc(v.Name)}</td><td>${Math.max(0, (v.UsageData || {}).RefCount || 0)}</td><td>${size(Math.max(0, (v.UsageData || {}).Size || 0))}</td></tr>`).join('')}</tbody></table>`;
  }
  load().catch((e) => ctx.toast(e.message, true));
  return { destroy() {} };
}
