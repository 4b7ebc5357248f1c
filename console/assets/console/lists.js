// Lists: the named lists rules read (allow lists, blocked devices, cheat
// apps ...): view, create, add, remove, bulk load from a file.
import { call, clientStream } from './shared/api.js';
import { h, clear, fmtTime, fmtShort } from './shared/dom.js';
import { card, errorAlert, loading, empty, enumLabel, mono } from './ui.js';

const KINDS = ['LIST_KIND_PLAIN', 'LIST_KIND_IDENTIFIER', 'LIST_KIND_CIDR'];
const ID_KINDS = ['account', 'device', 'ip', 'imei', 'idfa', 'android_id', 'oaid', 'mac', 'imsi', 'bssid', 'phone', 'email', 'instrument', 'site', 'org'];
const CHUNK = 2000;

export async function render(ctx) {
  ctx.sub.textContent = ' Allow lists, block lists and reference lists the rules read';
  const listEl = h('div', { id: 'lists' }, loading());
  const detail = h('div', { id: 'list-detail' });
  clear(ctx.content, h('div', { class: 'split' }, h('div', { class: 'stack' }, card('Lists', listEl), createCard(() => refresh())), detail));
  const refresh = async (select) => {
    let r;
    try { r = await call('ListsService', 'ListLists', {}); } catch (e) { clear(listEl, errorAlert(e)); return; }
    const ls = (r.lists || []).slice().sort((a, b) => a.name.localeCompare(b.name));
    if (!ls.length) { clear(listEl, empty('No lists yet.')); return; }
    clear(listEl, h('table', { id: 'lists-table' },
      h('thead', null, h('tr', null, h('th', null, 'Name'), h('th', null, 'Kind'), h('th', { class: 'num' }, 'Entries'), h('th', null, 'Updated'))),
      h('tbody', null, ls.map((l) => {
        const tr = h('tr', { class: 'clickable' + (l.name === select ? ' selected' : ''), 'data-list': l.name },
          h('td', null, h('div', { class: 'mono' }, l.name), h('div', { class: 'small muted' }, l.description || '')),
          h('td', { class: 'small' }, enumLabel(l.kind, 'LIST_KIND_'), l.identifierKind ? ` (${l.identifierKind})` : ''),
          h('td', { class: 'num' }, Number(l.count || 0).toLocaleString()),
          h('td', { class: 'small nowrap' }, fmtShort(l.updatedAt)));
        tr.addEventListener('click', () => { location.hash = '#/lists/' + encodeURIComponent(l.name); });
        return tr;
      }))));
  };
  await refresh(ctx.rest[0]);
  if (ctx.rest[0]) showList(ctx.rest[0], detail, () => refresh(ctx.rest[0]));
}

function createCard(done) {
  const name = h('input', { id: 'new-name', placeholder: 'e.g. blocked_devices' });
  const kind = h('select', { id: 'new-kind' }, KINDS.map((k) => h('option', { value: k }, enumLabel(k, 'LIST_KIND_'))));
  const idKind = h('select', { id: 'new-idkind' }, ID_KINDS.map((k) => h('option', { value: k }, k)));
  const idField = h('div', { class: 'field hidden' }, h('label', { for: 'new-idkind' }, 'Identifier'), idKind);
  kind.addEventListener('change', () => idField.classList.toggle('hidden', kind.value !== 'LIST_KIND_IDENTIFIER'));
  const desc = h('input', { id: 'new-desc', placeholder: 'What the list is for' });
  const msg = h('div');
  const form = h('form', { id: 'create-list' },
    h('div', { class: 'filters' }, h('div', { class: 'field span2' }, h('label', { for: 'new-name' }, 'Name'), name),
      h('div', { class: 'field span2' }, h('label', { for: 'new-kind' }, 'Kind'), kind), h('div', { class: 'span2' }, idField)),
    h('div', { class: 'field' }, h('label', { for: 'new-desc' }, 'Description'), desc), msg,
    h('div', { class: 'row' }, h('span', { class: 'spacer' }), h('button', { class: 'primary', type: 'submit' }, 'Create list')));
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    try {
      await call('ListsService', 'CreateList', { name: name.value.trim(), kind: kind.value, identifierKind: kind.value === 'LIST_KIND_IDENTIFIER' ? idKind.value : '', description: desc.value.trim() });
      location.hash = '#/lists/' + encodeURIComponent(name.value.trim());
      done();
    } catch (err) { clear(msg, errorAlert(err)); }
  });
  return card('New list', form);
}

function values(text) {
  return text.split(/[\r\n,]+/).map((v) => v.trim()).filter((v) => v && !v.startsWith('#'));
}

async function showList(name, el, refreshLists) {
  clear(el, card(name, loading()));
  let r;
  try {
    r = await call('ListsService', 'GetList', { name, pageSize: 200 });
  } catch (e) {
    clear(el, card(name, errorAlert(e)));
    return;
  }
  const l = r.list || {};
  const ident = l.kind === 'LIST_KIND_IDENTIFIER';
  const msg = h('div', { id: 'list-msg' });
  const reload = async (note) => { await showList(name, el, refreshLists); refreshLists(); if (note) document.getElementById('list-msg')?.append(note); };
  const addText = h('textarea', { id: 'add-values', rows: 3, placeholder: ident ? `Raw ${l.identifierKind} values, one per line (stored as pseudonyms)` : 'One value per line' });
  const expires = h('input', { id: 'add-expires', type: 'datetime-local' });
  const add = async (e) => {
    e.preventDefault();
    const vs = values(addText.value);
    if (!vs.length) return;
    try {
      const res = await call('ListsService', 'AddEntries', { name, values: vs, expiresAt: expires.value ? new Date(expires.value).toISOString() : undefined });
      reload(h('div', { class: 'alert ok' }, `Added ${res.added || 0}.`));
    } catch (err) { clear(msg, errorAlert(err, 'add')); }
  };
  const remove = async (vs) => {
    try {
      const res = await call('ListsService', 'RemoveEntries', { name, values: vs });
      reload(h('div', { class: 'alert ok' }, `Removed ${res.removed || 0}.`));
    } catch (err) { clear(msg, errorAlert(err, 'remove')); }
  };
  const rmText = h('textarea', { id: 'remove-values', rows: 2, placeholder: 'Values to remove, one per line' });
  const file = h('input', { id: 'bulk-file', type: 'file', accept: '.txt,.csv,text/plain,text/csv' });
  const bulk = async () => {
    const f = file.files && file.files[0];
    if (!f) return;
    const vs = values(await f.text());
    const messages = [];
    for (let i = 0; i < vs.length; i += CHUNK) messages.push({ name, values: vs.slice(i, i + CHUNK) });
    if (!messages.length) messages.push({ name, values: [] });
    clear(msg, h('div', { class: 'row' }, h('span', { class: 'spinner' }), `Loading ${vs.length.toLocaleString()} values in ${messages.length} chunk(s)…`));
    try {
      const res = await clientStream('ListsService', 'BulkLoad', messages);
      reload(h('div', { class: 'alert ok', id: 'bulk-ok' }, `Loaded ${Number(res.loaded || 0).toLocaleString()} values from ${f.name}.`));
    } catch (err) { clear(msg, errorAlert(err, 'bulk load')); }
  };
  const del = h('button', { type: 'button', class: 'danger', id: 'delete-list', onclick: async () => {
    clear(msg, h('div', { class: 'alert warn' }, h('strong', null, `Delete ${name} and its ${l.count || 0} entries?`), 'Rules that read it will see an empty list.',
      h('div', { class: 'row' }, h('span', { class: 'spacer' }), h('button', { type: 'button', class: 'ghost', onclick: () => clear(msg) }, 'Cancel'),
        h('button', { type: 'button', class: 'danger', onclick: async () => {
          try { await call('ListsService', 'DeleteList', { name }); location.hash = '#/lists'; } catch (err) { clear(msg, errorAlert(err, 'delete')); }
        } }, 'Delete list'))));
  } }, 'Delete');
  const entries = r.entries || [];
  clear(el, card(h('div', null, h('h2', { class: 'mono' }, name), h('div', { class: 'small muted' }, `${enumLabel(l.kind, 'LIST_KIND_')}${l.identifierKind ? ' · ' + l.identifierKind : ''} · version ${l.version || 0} · ${Number(l.count || 0).toLocaleString()} entries`)),
    h('div', { class: 'stack' },
      l.description ? h('p', null, l.description) : null,
      msg,
      h('form', { id: 'add-form', class: 'stack' }, h('div', { class: 'field' }, h('label', { for: 'add-values' }, 'Add'), addText),
        h('div', { class: 'row' }, h('label', { for: 'add-expires', class: 'small muted', style: null }, 'Expires (optional)'), h('div', { class: 'spacer' }, expires), h('button', { class: 'primary', type: 'submit', onclick: add }, 'Add'))),
      h('div', { class: 'field' }, h('label', { for: 'bulk-file' }, 'Bulk load from a file (one value per line)'),
        h('div', { class: 'row' }, h('div', { class: 'spacer' }, file), h('button', { type: 'button', id: 'bulk-load', onclick: bulk }, 'Load'))),
      h('div', { class: 'field' }, h('label', { for: 'remove-values' }, 'Remove'), rmText,
        h('div', { class: 'row' }, h('span', { class: 'spacer' }), h('button', { type: 'button', class: 'danger', id: 'remove', onclick: () => { const vs = values(rmText.value); if (vs.length) remove(vs); } }, 'Remove values'))),
      h('h3', null, `Entries${r.nextPageToken ? ' (first 200)' : ''}`),
      entries.length ? h('table', { id: 'entries' }, h('thead', null, h('tr', null, h('th', null, ident ? 'Value (pseudonym)' : 'Value'), h('th', null, 'Added'), h('th', null, 'Expires'), h('th', null, ''))),
        h('tbody', null, entries.map((x) => h('tr', { 'data-value': x.value }, h('td', null, mono(x.value)), h('td', { class: 'small nowrap' }, fmtShort(x.addedAt)), h('td', { class: 'small' }, x.expiresAt ? fmtShort(x.expiresAt) : 'never'),
          h('td', null, ident ? null : h('button', { type: 'button', class: 'ghost small', onclick: () => remove([x.value]) }, 'Remove')))))) : empty('The list is empty.')),
    del));
}
