// The dashboard's shell: routes (#/containers, #/container/ID/TAB, #/images[/ID],
// #/networks, #/volumes, #/events, #/host), the confirmation dialog, notices, and the
// live channel every page shares.

import { el, els, esc } from './api.js';
import { Live } from './live.js';
import * as pages from './pages.js';
import { container } from './container.js';

const boot = JSON.parse((document.getElementById('boot') || { textContent: '{}' }).textContent || '{}');
const live = new Live();
const view = el('#view');
let current = null;

// A modal question; resolves to null (cancelled) or {checkName: bool, ...}.
function confirm(title, text, checks = []) {
  const m = el('#modal');
  m.innerHTML = `<div class="dialog" role="dialog" aria-modal="true"><h2>${esc(title)}</h2><p>${esc(text)}</p>
    ${checks.map(([k, label]) => `<label><input type="checkbox" name="${esc(k)}"> ${esc(label)}</label>`).join('')}
    <div class="buttons"><button class="cancel">Cancel</button><button class="confirm danger">Confirm</button></div></div>`;
  m.hidden = false;
  return new Promise((resolve) => {
    const done = (ok) => {
      m.hidden = true;
      const out = {};
      els('input[type=checkbox]', m).forEach((i) => { out[i.name] = i.checked; });
      m.innerHTML = '';
      document.removeEventListener('keydown', onKey);
      resolve(ok ? out : null);
    };
    const onKey = (e) => { if (e.key === 'Escape') done(false); };
    document.addEventListener('keydown', onKey);
    el('.cancel', m).onclick = () => done(false);
    el('.confirm', m).onclick = () => done(true);
    el('.confirm', m).focus();
  });
}

function toast(text, bad = false) {
  const t = document.createElement('div');
  t.className = `toast${bad ? ' bad' : ''}`;
  t.textContent = text;
  el('#toasts').appendChild(t);
  setTimeout(() => t.remove(), bad ? 8000 : 3000);
}

const routes = {
  containers: pages.containers,
  container,
  images: pages.images,
  networks: pages.networks,
  volumes: pages.volumes,
  events: pages.events,
  host: pages.host,
};

function route() {
  const [page, param, sub] = (location.hash.replace(/^#\/?/, '') || 'containers').split('/');
  const draw = routes[page] || routes.containers;
  // Tab changes inside one container page keep the page.
  if (current && current.page === page && page === 'container' && current.param === param) return;
  if (current && current.view) current.view.destroy();
  live.watch(null);
  els('header nav a').forEach((a) => a.classList.toggle('on', a.dataset.page === (page === 'container' ? 'containers' : page)));
  view.textContent = '';
  current = { page, param, view: draw(view, { live, confirm, toast, boot, param, sub }) };
  document.title = `berth — ${page}`;
}

window.addEventListener('hashchange', route);
if (boot.version) el('#version').textContent = `berth ${boot.version.Version}`;
route();
// For tests and the benchmark: the first screen is drawn.
document.documentElement.dataset.ready = '1';
