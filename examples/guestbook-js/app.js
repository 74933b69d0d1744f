// The guestbook in JavaScript (componentize-js): the same routes, storage and pages as the
// Rust guestbook in examples/guestbook, against the same nukisashi:platform/module world.
//
//   GET  /             an HTML page with the entries and a form (title from config)
//   GET  /entries      the entries as JSON, newest first
//   POST /entries      add an entry (JSON {"name", "message"} or a form post)
//   GET  /entries/ID   one entry
//
// Entries live in the module's key-value store, which the host keeps per municipality. The
// handler is the web-standard fetch event; componentize-js exports it as
// wasi:http/incoming-handler@0.2.10, so this builds against the WIT that
// `nukisashi wit --wasi 0.2.10` writes.

import { currentMunicipality } from 'nukisashi:platform/context@1.2.0';
import { currentCaller } from 'nukisashi:platform/identity@1.2.0';
import { get as configGet } from 'nukisashi:platform/config@1.2.0';
import * as kv from 'nukisashi:platform/kv@1.2.0';
import { log } from 'nukisashi:platform/log@1.2.0';

const MAX_NAME_CHARS = 100;
const MAX_MESSAGE_CHARS = 2000;
const FORM_TOKEN_FIELD = 'nukisashi_form_token';
const encoder = new TextEncoder();
const decoder = new TextDecoder();

class Refusal extends Error {
  constructor(status, detail) {
    super(detail);
    this.status = status;
  }
}

// The platform's refusal of a call (a WIT `error` variant, thrown), as the module answers it.
function platformRefusal(e) {
  const error = e && e.payload;
  switch (error && error.tag) {
    case 'not-granted': return new Refusal(403, `this municipality has not granted the \`${error.val}\` capability to the module`);
    case 'too-large': return new Refusal(413, error.val);
    case 'invalid': return new Refusal(400, error.val);
    case 'unavailable': return new Refusal(503, error.val);
    default: return null;
  }
}

const escapeHtml = (text) => String(text).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
// Zero-padded so that keys sort in insertion order.
const entryKey = (id) => `entry/${String(id).padStart(12, '0')}`;
const title = () => configGet('title') ?? `${currentMunicipality().name} ゲストブック`;

function entries() {
  const keys = [];
  let after;
  for (;;) {
    const page = kv.listKeys('entry/', after, 1000);
    keys.push(...page.keys);
    if (page.next === undefined) break;
    after = page.next;
  }
  const out = [];
  for (const key of keys) {
    const value = kv.get(key);
    if (value !== undefined) out.push(JSON.parse(decoder.decode(value)));
  }
  return out.reverse();
}

function validate(name, message) {
  if (!name.trim() || !message.trim()) throw new Refusal(422, 'both name and message are required');
  if ([...name.trim()].length > MAX_NAME_CHARS || [...message].length > MAX_MESSAGE_CHARS) {
    throw new Refusal(422, `name is limited to ${MAX_NAME_CHARS} characters and message to ${MAX_MESSAGE_CHARS}`);
  }
}

const json = (value, status = 200) => new Response(JSON.stringify(value), { status, headers: { 'content-type': 'application/json' } });

async function add(request, base) {
  const mediaType = (request.headers.get('content-type') ?? '').split(';')[0].trim().toLowerCase();
  const isForm = mediaType === 'application/x-www-form-urlencoded';
  const body = await request.text();
  const form = isForm ? new URLSearchParams(body) : new URLSearchParams();
  // With a browser session the host gives the page a form token; a post with that session
  // must bring it back, unless it is JSON (which no page elsewhere can send).
  const token = request.headers.get('x-nukisashi-form-token');
  if (token && mediaType !== 'application/json' && form.get(FORM_TOKEN_FIELD) !== token) {
    throw new Refusal(403, 'このフォームは、このサービスのページから送られたものと確かめられませんでした。ページを開き直して、もう一度送信してください。');
  }
  let name, message;
  if (isForm) {
    name = form.get('name') ?? '';
    message = form.get('message') ?? '';
  } else {
    let parsed;
    try { parsed = JSON.parse(body); } catch (e) { throw new Refusal(400, `invalid JSON body: ${e.message}`); }
    if (typeof parsed?.name !== 'string' || typeof parsed?.message !== 'string') throw new Refusal(400, 'invalid JSON body: name and message are strings');
    ({ name, message } = parsed);
  }
  validate(name, message);
  // Atomic: concurrent posts never get the same id.
  const id = Number(kv.increment('last-id', 1n));
  const entry = { id, name, message };
  kv.set(entryKey(id), encoder.encode(JSON.stringify(entry)));
  log('info', `guestbook entry ${id} added`);
  if (isForm) return new Response(null, { status: 303, headers: { location: `${base}/` } });
  return json(entry, 201);
}

function show(id) {
  if (!/^[0-9]+$/.test(id)) throw new Refusal(400, 'entry ids are whole numbers');
  const value = kv.get(entryKey(Number(id)));
  if (value === undefined) throw new Refusal(404, `no entry ${id}`);
  return new Response(value, { headers: { 'content-type': 'application/json' } });
}

function page(request, base) {
  const town = currentMunicipality();
  const caller = currentCaller();
  const token = request.headers.get('x-nukisashi-form-token');
  const tokenField = token ? `<input type="hidden" name="${FORM_TOKEN_FIELD}" value="${escapeHtml(token)}">` : '';
  const who = caller.displayName ? `<p>${escapeHtml(caller.displayName)} さん</p>` : '';
  const items = entries().map((e) => `<li><strong>${escapeHtml(e.name)}</strong>: ${escapeHtml(e.message)}</li>`).join('');
  const t = escapeHtml(title());
  const html = `<!doctype html>
<html lang="ja"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>${t}</title></head>
<body><main>
<h1>${t}</h1>
<p>${escapeHtml(town.name)} (${town.lgCode})</p>${who}
<form method="post" action="${escapeHtml(base + '/entries')}">${tokenField}
<p><label for="name">お名前</label> <input id="name" name="name" required maxlength="${MAX_NAME_CHARS}"></p>
<p><label for="message">メッセージ</label> <textarea id="message" name="message" required maxlength="${MAX_MESSAGE_CHARS}"></textarea></p>
<p><button type="submit">記帳する</button></p>
</form>
<ul>${items}</ul>
<p>JavaScript (componentize-js) で書かれています。</p>
</main></body></html>`;
  return new Response(html, { headers: { 'content-type': 'text/html; charset=utf-8' } });
}

async function route(request) {
  const base = request.headers.get('x-nukisashi-base-path') ?? '';
  const segments = new URL(request.url).pathname.split('/').filter((s) => s);
  const get = request.method === 'GET' || request.method === 'HEAD';
  if (segments.length === 0 && get) return page(request, base);
  if (segments.length === 1 && segments[0] === 'entries' && get) return json(entries());
  if (segments.length === 1 && segments[0] === 'entries' && request.method === 'POST') return add(request, base);
  if (segments.length === 2 && segments[0] === 'entries' && get) return show(segments[1]);
  throw new Refusal(404, `this module has no route ${new URL(request.url).pathname}`);
}

function problem(status, detail) {
  const body = { type: `about:blank#module-${status}`, title: 'Refused', status, detail };
  return new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/problem+json' } });
}

addEventListener('fetch', (event) => event.respondWith((async () => {
  try {
    return await route(event.request);
  } catch (e) {
    const refusal = e instanceof Refusal ? e : platformRefusal(e);
    if (refusal) return problem(refusal.status, refusal.message);
    throw e;
  }
})()));
