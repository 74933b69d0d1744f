// The Nukisashi console: one small ES module, no build step. Every action goes through
// the same REST API (/api/v1) with the signed-in user's token, so the API's authorization
// is the console's authorization; the console only decides what to show.

import { t, lang, setLang } from "/console/i18n.js";

const TOKEN_KEY = "nukisashi.token";
const main = document.getElementById("main");

// ---------- helpers ----------

/** Builds an element: h("a", {href: "#"}, "text", child…). Text is never parsed as HTML. */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, v);
  }
  for (const c of children.flat()) if (c !== null && c !== undefined) el.append(c instanceof Node ? c : String(c));
  return el;
}

function token() { return sessionStorage.getItem(TOKEN_KEY); }

/** The token's claims, for choosing pages only (the API checks the signature). */
function claims() {
  const raw = token();
  if (!raw) return null;
  try {
    const part = raw.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const json = decodeURIComponent(atob(part).split("").map(c => "%" + c.charCodeAt(0).toString(16).padStart(2, "0")).join(""));
    return JSON.parse(json);
  } catch { return null; }
}

class ApiError extends Error {
  constructor(status, problem) { super(problem.detail || problem.title || String(status)); this.status = status; this.problem = problem; }
}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${token()}` };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(`/api/v1${path}`, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = { detail: text }; }
  if (!response.ok) throw new ApiError(response.status, data || {});
  return data;
}

function say(message, kind = "ok") {
  const status = document.getElementById("status");
  status.replaceChildren(h("p", { class: kind }, message));
}

function problemBox(error) {
  const p = error.problem || {};
  return h("div", { class: "error", role: "alert" }, h("strong", {}, p.title || t("failed")), " ", p.detail || error.message);
}

/** Runs an action from a button: disables it meanwhile, reports the result. */
async function act(button, action, done) {
  button.disabled = true;
  try { const result = await action(); say(done(result)); await route(); }
  catch (e) { say(e.problem ? `${e.problem.title || ""} ${e.problem.detail || e.message}` : e.message, "error"); }
  finally { button.disabled = false; }
}

function name(names) { return (names && (names[lang()] || names.ja || names.en)) || ""; }
function month() { return new Date(Date.now() + 9 * 3600e3).toISOString().slice(0, 7); } // Japan time
function yen(n) { return new Intl.NumberFormat(lang() === "ja" ? "ja-JP" : "en-US").format(n) + (lang() === "ja" ? " 円" : " yen"); }

async function section(title, load) {
  const body = h("div", {}, h("p", { class: "meta" }, t("loading")));
  const s = h("section", {}, h("h2", {}, title), body);
  main.append(s);
  try { body.replaceChildren(...[].concat(await load())); } catch (e) { body.replaceChildren(problemBox(e)); }
  return s;
}

function table(headers, rows) {
  return h("table", {}, h("thead", {}, h("tr", {}, headers.map(x => h("th", { scope: "col" }, x)))), h("tbody", {}, rows));
}

// ---------- sign-in ----------

async function signIn() {
  const providers = await signInProviders();
  main.replaceChildren(
    h("h1", {}, t("signIn")),
    ...(providers.length ? [h("p", { class: "providers" }, providers.map(p =>
      h("button", { type: "button", onclick: () => startProviderSignIn(p) }, t("signInWith", p.name))))] : []),
    h("p", {}, t("signInHelp")),
    h("form", { id: "signin", onsubmit: e => {
      e.preventDefault();
      const value = e.target.elements.token.value.trim();
      sessionStorage.setItem(TOKEN_KEY, value);
      if (!claims()) { sessionStorage.removeItem(TOKEN_KEY); say(t("badToken"), "error"); return; }
      location.hash = `#/${home()}`;
    } },
      h("label", { for: "token" }, t("token")),
      h("textarea", { id: "token", name: "token", rows: 4, cols: 70, required: true, autocomplete: "off", spellcheck: "false" }),
      h("p", {}, h("button", { type: "submit" }, t("signIn")))),
  );
}

// Sign-in through an identity provider: OAuth 2.0 authorization code with PKCE (RFC 7636).
// The provider sends the browser back to /console/?code=…&state=…; the code and the verifier
// kept in this tab buy the access token, which is then used like a pasted one.
const PKCE_KEY = "nukisashi.pkce";

async function signInProviders() {
  try { const r = await fetch("/console/sign-in.json"); return r.ok ? await r.json() : []; } catch { return []; }
}

function base64url(bytes) { return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, ""); }
function redirectUri() { return `${location.origin}/console/`; }

async function startProviderSignIn(provider) {
  const verifier = base64url(crypto.getRandomValues(new Uint8Array(32)));
  const state = base64url(crypto.getRandomValues(new Uint8Array(16)));
  const challenge = base64url(new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier))));
  sessionStorage.setItem(PKCE_KEY, JSON.stringify({ verifier, state, token_endpoint: provider.token_endpoint, client_id: provider.client_id }));
  const q = new URLSearchParams({ response_type: "code", client_id: provider.client_id, redirect_uri: redirectUri(), scope: provider.scope, state, code_challenge: challenge, code_challenge_method: "S256" });
  location.assign(`${provider.authorization_endpoint}?${q}`);
}

/** Completes a provider sign-in when the page is the provider's redirect back. */
async function finishProviderSignIn() {
  const params = new URLSearchParams(location.search);
  if (!params.has("code") && !params.has("error")) return;
  history.replaceState(null, "", "/console/");
  const pending = JSON.parse(sessionStorage.getItem(PKCE_KEY) || "null");
  sessionStorage.removeItem(PKCE_KEY);
  if (params.has("error")) { say(t("providerRefused", params.get("error_description") || params.get("error")), "error"); return; }
  if (!pending || pending.state !== params.get("state")) { say(t("providerStateMismatch"), "error"); return; }
  try {
    const response = await fetch(pending.token_endpoint, { method: "POST", body: new URLSearchParams({
      grant_type: "authorization_code", code: params.get("code"), redirect_uri: redirectUri(), client_id: pending.client_id, code_verifier: pending.verifier }) });
    const body = await response.json().catch(() => ({}));
    if (!response.ok || !body.access_token) throw new Error(body.error_description || body.error || `HTTP ${response.status}`);
    sessionStorage.setItem(TOKEN_KEY, body.access_token);
    if (!claims()) { sessionStorage.removeItem(TOKEN_KEY); say(t("badToken"), "error"); }
  } catch (e) { say(t("providerTokenFailed", e.message), "error"); }
}

function home() {
  const c = claims();
  if (!c) return "signin";
  return { operator: "operator", vendor: "vendor", admin: "municipality", staff: "municipality" }[c.role] || "signin";
}

// ---------- municipality ----------

async function municipality() {
  const c = claims();
  const code = c.lg_code;
  main.replaceChildren(h("h1", {}, t("municipalityTitle"), " ", code));
  const [catalog, subscriptions] = await Promise.all([api("GET", "/catalog"), api("GET", `/municipalities/${code}/subscriptions`).catch(() => [])]);
  const subscribed = new Map(subscriptions.filter(s => s.active).map(s => [s.module_id, s]));

  await section(t("subscriptions"), () => subscriptions.filter(s => s.active).length === 0 ? h("p", {}, t("noSubscriptions")) :
    table([t("module"), t("version"), t("grants"), ""], subscriptions.filter(s => s.active).map(s => h("tr", {},
      h("td", {}, s.module_id),
      h("td", {}, s.version, s.pinned ? ` (${t("pinned")})` : ""),
      h("td", {}, s.grants.join(", ")),
      h("td", {},
        h("a", { href: s.url, target: "_blank", rel: "noopener", "data-open": s.module_id }, t("open")), " ",
        h("button", { type: "button", class: "secondary", onclick: e => exportData(e.target, code, s.module_id) }, t("exportData")), " ",
        h("button", { type: "button", class: "danger", onclick: e => {
          if (!confirm(t("confirmUnsubscribe", s.module_id))) return;
          act(e.target, () => api("DELETE", `/municipalities/${code}/subscriptions/${s.module_id}`), () => t("unsubscribed", s.module_id));
        } }, t("unsubscribe")))))));

  await section(t("providersTitle"), async () => {
    const interfaces = await api("GET", `/municipalities/${code}/providers`);
    return table([t("interface"), t("provider"), t("extensionItems"), ""], interfaces.map(i => {
      const select = h("select", { name: "provider", "aria-label": t("chooseProvider", i.label) },
        h("option", { value: "" }, i.platform_default ? t("platformData") : t("noProvider")),
        i.candidates.map(c => h("option", { value: c.module, selected: c.module === i.chosen }, `${c.module} ${c.version}`)));
      const items = i.candidates.map(c => h("div", { "data-provider": c.module },
        h("strong", {}, c.module), ": ",
        c.extension_items.length === 0 ? t("noExtensionItems") : c.extension_items.map(x => `${x.name}（${x.type}）${x.description}`).join("、")));
      return h("tr", { "data-interface": i.interface },
        h("td", {}, `${i.label} (${i.interface})`),
        h("td", {}, select),
        h("td", {}, items.length ? items : t("noCandidates")),
        h("td", {}, h("button", { type: "button", onclick: e =>
          act(e.target, () => api("PUT", `/municipalities/${code}/providers/${i.interface}`, { module: select.value || null }), () => t("providerChosen", i.label, select.value || "—")) }, t("choose"))));
    }));
  });

  await section(t("noticesTitle"), async () => {
    const here = await api("GET", `/municipalities/${code}/notices`);
    const accepted = new Map(here.accepted.map(a => [a.kind, a.module_id]));
    const kinds = [...new Set([...Object.keys(here.receivable), ...accepted.keys()])].sort();
    return kinds.length === 0 ? h("p", {}, t("noNoticeKinds")) : table([t("noticeKind"), t("acceptedInto"), ""], kinds.map(kind => {
      const into = accepted.get(kind);
      const select = h("select", { name: "module", "aria-label": t("acceptInto", kind) }, (here.receivable[kind] || []).map(m => h("option", { value: m, selected: m === into }, m)));
      return h("tr", { "data-kind": kind },
        h("td", {}, kind),
        h("td", {}, into || t("notAccepted")),
        h("td", {}, select, " ",
          h("button", { type: "button", onclick: e => act(e.target, () => api("PUT", `/municipalities/${code}/notices/${kind}`, { module: select.value }), () => t("noticesAccepted", kind)) }, t("accept")), " ",
          into ? h("button", { type: "button", class: "secondary", onclick: e => act(e.target, () => api("DELETE", `/municipalities/${code}/notices/${kind}`), () => t("noticesRefused", kind)) }, t("stopAccepting")) : null));
    }));
  });

  const categories = [...new Set(catalog.map(m => m.category))].sort();
  const list = h("div", { class: "cards", id: "catalog" });
  const filter = h("select", { id: "category", onchange: () => draw() }, h("option", { value: "" }, t("allCategories")), categories.map(x => h("option", { value: x }, x)));
  const search = h("input", { id: "search", type: "search", oninput: () => draw() });
  function draw() {
    const q = search.value.trim().toLowerCase();
    list.replaceChildren(...catalog
      .filter(m => !filter.value || m.category === filter.value)
      .filter(m => !q || `${m.id} ${m.name.ja} ${m.name.en} ${m.description} ${m.vendor}`.toLowerCase().includes(q))
      .map(m => moduleCard(code, m, subscribed.get(m.id))));
    if (!list.children.length) list.append(h("p", {}, t("noMatch")));
  }
  draw();
  main.append(h("section", {}, h("h2", {}, t("catalog")),
    h("div", { class: "filters" }, h("label", {}, t("category"), " ", filter), h("label", {}, t("search"), " ", search)), list));

  await section(t("usageTitle", month()), async () => {
    const usage = await api("GET", `/municipalities/${code}/usage?month=${month()}`);
    const byModule = new Map();
    for (const r of usage.rows) {
      const m = byModule.get(r.module_id) || { requests: 0, errors: 0, cpu_ms: 0, peak: 0 };
      m.requests += r.requests; m.errors += r.errors; m.cpu_ms += r.cpu_ms; m.peak = Math.max(m.peak, r.peak_memory_bytes);
      byModule.set(r.module_id, m);
    }
    const storage = Object.values(usage.storage_bytes).reduce((a, b) => a + b, 0);
    return byModule.size === 0 ? h("p", {}, t("noUsage")) : [table([t("module"), t("requests"), t("errors"), t("cpuMs"), t("peakMemory")],
      [...byModule].map(([module, m]) => h("tr", {}, h("td", {}, module), h("td", { class: "num" }, m.requests), h("td", { class: "num" }, m.errors), h("td", { class: "num" }, m.cpu_ms), h("td", { class: "num" }, (m.peak / 1048576).toFixed(1))))),
      h("p", { class: "meta" }, t("storage", (storage / 1024).toFixed(1)))];
  });

  await section(t("ownCostTitle", month()), async () => {
    try {
      const cost = await api("GET", `/municipalities/${code}/cost?month=${month()}`);
      const s = cost.share;
      return [h("p", { class: "amount" }, t("ownCost", yen(s.amount))),
        table([t("fixedShare"), t("populationShare"), t("usageShare")], [h("tr", {}, [s.fixed, s.by_population, s.by_usage].map(v => h("td", { class: "num" }, yen(v))))]),
        h("p", { class: "meta" }, t("ownCostBasis", yen(cost.policy.total), cost.municipalities, cost.policy.published_at))];
    } catch (e) {
      if (e.status === 404) return h("p", {}, t("noCostPolicy"));
      throw e;
    }
  });

  await section(t("auditTitle"), async () => {
    const rows = (await api("GET", `/municipalities/${code}/audit?limit=1000`)).slice(-50).reverse();
    return rows.length === 0 ? h("p", {}, t("noAudit")) : table([t("when"), t("module"), t("interface"), t("records"), t("caller")],
      rows.map(r => h("tr", {}, h("td", {}, r.at), h("td", {}, `${r.module_id} ${r.module_version}`), h("td", {}, r.interface, r.counterpart ? ` (${r.counterpart})` : ""), h("td", {}, r.records.join(", ")), h("td", {}, `${r.caller_role} ${r.caller_subject || ""}`))));
  });
}

function moduleCard(code, m, subscription) {
  const grants = m.capabilities.map(cap => h("label", {},
    h("input", { type: "checkbox", name: "grant", value: cap, checked: subscription ? subscription.grants.includes(cap) : false }), " ",
    h("strong", {}, cap), " — ", m.capability_explanations[cap] || ""));
  const config = Object.entries(m.config || {}).map(([key, field]) => h("label", {},
    `${key}${field.required ? " *" : ""} `, h("span", { class: "meta" }, field.description), h("br"),
    h("input", { name: `config:${key}`, value: field.default || "", required: field.required || false, "aria-label": key })));
  const versionSelect = h("select", { name: "version" }, h("option", { value: "" }, t("latest", m.latest)), m.versions.map(v => h("option", { value: v, selected: Boolean(subscription && subscription.pinned && subscription.version === v) }, t("pinTo", v))));
  const form = h("form", { onsubmit: e => {
    e.preventDefault();
    const f = e.target;
    const body = {
      grants: [...f.querySelectorAll("input[name=grant]:checked")].map(x => x.value),
      config: Object.fromEntries([...f.querySelectorAll("input[name^='config:']")].map(x => [x.name.slice(7), x.value])),
    };
    // The form always says: a version pins it, "latest" follows (null).
    body.version = f.elements.version.value || null;
    act(f.querySelector("button[type=submit]"), () => api("PUT", `/municipalities/${code}/subscriptions/${m.id}`, body), s => t("subscribed", m.id, s.version));
  } },
    h("fieldset", {}, h("legend", {}, t("grantLegend")), grants.length ? grants : h("p", { class: "meta" }, t("noCapabilities"))),
    config.length ? h("fieldset", {}, h("legend", {}, t("configLegend")), config) : null,
    h("label", {}, t("version"), " ", versionSelect),
    h("button", { type: "submit" }, subscription ? t("update") : t("subscribe")));
  return h("article", { class: "card", "data-module": m.id },
    h("h3", {}, name(m.name)),
    h("p", { class: "meta" }, `${m.category} · ${t("vendor")}: ${m.vendor} · ${t("versions")}: ${m.versions.join(", ")}`),
    h("p", {}, m.description),
    subscription ? h("p", { class: "ok" }, t("inUse", subscription.version)) : null,
    h("details", { ontoggle: e => e.target.open && fillConfig(code, m.id, form) }, h("summary", {}, subscription ? t("changeSubscription") : t("subscribeSummary")), form));
}

/** Puts the municipality's current settings for the module into the form (once). */
async function fillConfig(code, module, form) {
  if (form.dataset.filled) return;
  form.dataset.filled = "yes";
  try {
    const current = await api("GET", `/municipalities/${code}/modules/${module}/config`);
    for (const [key, value] of Object.entries(current)) {
      const input = form.querySelector(`input[name="config:${CSS.escape(key)}"]`);
      // What the user has already typed wins over what was stored.
      if (input && input.value === input.defaultValue) input.value = value;
    }
    form.dataset.filled = "done";
  } catch (e) { say(e.message, "error"); }
}

async function exportData(button, code, module) {
  await act(button, async () => {
    const response = await fetch(`/api/v1/municipalities/${code}/modules/${module}/export`, { headers: { Authorization: `Bearer ${token()}` } });
    if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => ({})));
    const url = URL.createObjectURL(await response.blob());
    h("a", { href: url, download: `${code}-${module}.ndjson` }).click();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  }, () => t("exported", module));
}

// ---------- operator ----------

async function operator() {
  main.replaceChildren(h("h1", {}, t("operatorTitle")));
  await section(t("reviewQueue"), async () => {
    const pending = await api("GET", "/reviews");
    return pending.length === 0 ? h("p", {}, t("noReviews")) : table([t("module"), t("version"), t("vendor"), t("capabilities"), ""],
      pending.map(v => {
        const reason = h("input", { name: "reason", "aria-label": t("reason"), placeholder: t("reason") });
        return h("tr", { "data-review": `${v.module_id}@${v.version}` },
          h("td", {}, v.module_id), h("td", {}, v.version), h("td", {}, v.manifest.vendor), h("td", {}, v.manifest.capabilities.join(", ")),
          h("td", {}, reason, " ",
            h("button", { type: "button", onclick: e => act(e.target, () => api("POST", `/modules/${v.module_id}/versions/${v.version}/approve`, { reason: reason.value }), () => t("approved", v.module_id, v.version)) }, t("approve")), " ",
            h("button", { type: "button", class: "danger", onclick: e => act(e.target, () => api("POST", `/modules/${v.module_id}/versions/${v.version}/reject`, { reason: reason.value }), () => t("rejected", v.module_id, v.version)) }, t("reject"))));
      }));
  });
  await section(t("liveModules"), async () => {
    const [modules, live] = await Promise.all([api("GET", "/module-versions"), fetch("/api/v1/modules").then(r => r.json())]);
    return modules.length === 0 ? h("p", {}, t("noModules")) : modules.map(m => operatorModule(m, live.find(x => x.id === m.id)));
  });
  await section(t("errorsTitle", month()), async () => {
    const usage = await api("GET", `/usage?month=${month()}`);
    const byModule = new Map();
    for (const r of usage.rows) {
      const m = byModule.get(r.module_id) || { requests: 0, errors: 0 };
      m.requests += r.requests; m.errors += r.errors;
      byModule.set(r.module_id, m);
    }
    return byModule.size === 0 ? h("p", {}, t("noUsage")) : table([t("module"), t("requests"), t("errors")],
      [...byModule].sort((a, b) => b[1].errors - a[1].errors).map(([module, m]) => h("tr", {}, h("td", {}, module), h("td", { class: "num" }, m.requests), h("td", { class: "num" }, m.errors))));
  });
  await section(t("health"), async () => {
    const response = await fetch("/readyz");
    return h("p", { class: response.ok ? "ok" : "error" }, `/readyz: ${response.status} ${await response.text()}`);
  });
  await section(t("costTitle", month()), () => costForm());
}

/** One module for the operator: every version with its state and where it runs, and the
 *  lifecycle actions (swap — to every municipality or a staged list —, roll back, suspend or resume). */
function operatorModule(m, routed) {
  const runsIn = v => routed ? Object.entries(routed.municipalities).filter(([, x]) => x === v).map(([code]) => code).sort() : [];
  const codes = h("input", { name: "lg_codes", size: 24, "aria-label": t("stagedCodes"), placeholder: t("stagedCodes") });
  const target = h("select", { name: "version", "aria-label": t("swapTo") }, m.versions.filter(v => v.status === "approved").map(v => h("option", { value: v.version }, v.version)));
  const staged = () => {
    const list = codes.value.split(/[\s,、]+/).filter(Boolean);
    return list.length ? list : undefined;
  };
  return h("div", { "data-module": m.id },
    h("h3", {}, m.id, m.suspended ? ` — ${t("suspendedBecause", m.suspended)}` : ""),
    table([t("version"), t("status"), t("runsIn")], m.versions.map(v => {
      const where = runsIn(v.version);
      return h("tr", {}, h("td", {}, v.version), h("td", {}, t(`status_${v.status}`)),
        h("td", {}, routed && routed.default_version === v.version ? `${t("allMunicipalities")} ` : "", where.length ? `${where.length} ${t("municipalitiesCount")}: ${where.join(", ")}` : ""));
    })),
    h("p", { class: "filters" },
      h("label", {}, t("swapTo"), " ", target), h("label", {}, t("stagedLabel"), " ", codes),
      h("button", { type: "button", onclick: e => act(e.target, () => api("POST", `/modules/${m.id}/swap`, { version: target.value, lg_codes: staged() }), r => t("swapped", m.id, r.version, r.elapsed_us)) }, t("swap")),
      h("button", { type: "button", class: "secondary", onclick: e => act(e.target, () => api("POST", `/modules/${m.id}/rollback`, { lg_codes: staged() }), r => t("rolledBack", m.id, r.elapsed_us)) }, t("rollback")),
      m.suspended
        ? h("button", { type: "button", onclick: e => act(e.target, () => api("POST", `/modules/${m.id}/resume`), () => t("resumed", m.id)) }, t("resume"))
        : h("button", { type: "button", class: "danger", onclick: e => {
          const reason = prompt(t("suspendReason", m.id));
          if (reason) act(e.target, () => api("POST", `/modules/${m.id}/suspend`, { reason }), () => t("suspended", m.id));
        } }, t("suspend"))));
}

function costForm() {
  const out = h("div", {});
  const form = h("form", { onsubmit: async e => {
    e.preventDefault();
    const f = e.target.elements;
    const policy = { total: Number(f.total.value), fixed: Number(f.fixed.value), population: Number(f.population.value), usage: Number(f.usage.value) };
    try {
      if (e.submitter && e.submitter.name === "publish") {
        await api("PUT", `/cost-policies/${month()}`, policy);
        say(t("costPublished", month()));
      }
      const report = await api("GET", `/reports/cost?${new URLSearchParams({ month: month(), ...policy })}`);
      const rows = report.shares;
      const max = Math.max(1, ...rows.map(r => r.amount));
      out.replaceChildren(
        table([t("municipality"), t("amount")], rows.map(r => h("tr", {}, h("td", {}, `${r.name || ""} ${r.lg_code}`), h("td", { class: "num" }, yen(r.amount))))),
        chart(rows.map(r => [r.name || r.lg_code, r.amount]), max));
    } catch (err) { out.replaceChildren(problemBox(err)); }
  } },
    h("div", { class: "filters" },
      h("label", {}, t("totalCost"), " ", h("input", { name: "total", type: "number", min: 0, value: 1000000, required: true })),
      h("label", {}, t("fixedWeight"), " ", h("input", { name: "fixed", type: "number", min: 0, value: 1, size: 4 })),
      h("label", {}, t("populationWeight"), " ", h("input", { name: "population", type: "number", min: 0, value: 1, size: 4 })),
      h("label", {}, t("usageWeight"), " ", h("input", { name: "usage", type: "number", min: 0, value: 1, size: 4 })),
      h("button", { type: "submit", name: "calculate" }, t("calculate")),
      h("button", { type: "submit", name: "publish" }, t("publishCost"))));
  return [form, out];
}

/** A horizontal bar chart as inline SVG, with a text alternative. */
function chart(rows, max) {
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("class", "chart");
  svg.setAttribute("role", "img");
  svg.setAttribute("aria-label", t("costChart"));
  svg.setAttribute("width", "100%");
  svg.setAttribute("viewBox", `0 0 600 ${rows.length * 24 + 4}`);
  rows.forEach(([label, value], i) => {
    const text = document.createElementNS(ns, "text");
    text.setAttribute("x", "0"); text.setAttribute("y", String(i * 24 + 16)); text.textContent = label;
    const bar = document.createElementNS(ns, "rect");
    bar.setAttribute("x", "180"); bar.setAttribute("y", String(i * 24 + 4)); bar.setAttribute("height", "16");
    bar.setAttribute("width", String(Math.max(1, (value / max) * 400)));
    svg.append(text, bar);
  });
  return svg;
}

// ---------- vendor ----------

async function vendor() {
  const c = claims();
  main.replaceChildren(h("h1", {}, t("vendorTitle"), " ", c.vendor_id || ""));
  const result = h("div", { id: "publish-result" });
  const progress = h("progress", { max: 100, value: 0, hidden: true, "aria-label": t("uploadProgress") });
  const form = h("form", { id: "publish", onsubmit: e => {
    e.preventDefault();
    const data = new FormData(e.target);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/v1/modules");
    xhr.setRequestHeader("Authorization", `Bearer ${token()}`);
    progress.hidden = false;
    xhr.upload.onprogress = p => { if (p.lengthComputable) progress.value = Math.round(100 * p.loaded / p.total); };
    xhr.onload = () => {
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch { body = { detail: xhr.responseText }; }
      if (xhr.status >= 200 && xhr.status < 300) {
        say(t("published", body.module_id, body.version, t(`status_${body.status}`)));
        route();
      } else {
        result.replaceChildren(problemBox(new ApiError(xhr.status, body)));
      }
    };
    xhr.onerror = () => result.replaceChildren(h("p", { class: "error", role: "alert" }, t("uploadFailed")));
    xhr.send(data);
  } },
    h("label", {}, t("manifestFile"), " ", h("input", { type: "file", name: "manifest", accept: ".toml", required: true })),
    h("label", {}, t("componentFile"), " ", h("input", { type: "file", name: "component", accept: ".wasm", required: true })),
    h("label", {}, t("signatureFile"), " ", h("input", { type: "file", name: "signature", accept: ".sig,.txt" })),
    h("button", { type: "submit" }, t("publish")), progress);
  main.append(h("section", {}, h("h2", {}, t("publishTitle")), h("p", { class: "meta" }, t("publishHelp")), form, result));
  await section(t("myModules"), () => vendorModules(c.vendor_id));
}

/** Every module of the vendor: versions, review decisions with reasons, where each runs. */
async function vendorModules(vendorId) {
  const [modules, live] = await Promise.all([api("GET", `/vendors/${vendorId}/modules`), fetch("/api/v1/modules").then(r => r.json())]);
  if (modules.length === 0) return h("p", {}, t("noVendorModules"));
  return modules.map(m => {
    const routed = live.find(x => x.id === m.id);
    const runsIn = v => routed ? Object.entries(routed.municipalities).filter(([, x]) => x === v).map(([code]) => code).join(", ") : "";
    const reasons = v => m.reviews.filter(r => r.version === v).map(r => `${t(`decision_${r.decision}`)}: ${r.reason}`).join(" / ");
    return h("div", { "data-vendor-module": m.id },
      h("h3", {}, m.id, m.suspended ? ` (${t("suspendedBecause", m.suspended)})` : ""),
      table([t("version"), t("status"), t("reviewReasons"), t("runsIn")], m.versions.map(v => h("tr", {},
        h("td", {}, v.version), h("td", {}, t(`status_${v.status}`)), h("td", {}, reasons(v.version)), h("td", {}, runsIn(v.version))))));
  });
}

// ---------- shell ----------

const PAGES = { signin: signIn, municipality, operator, vendor };

async function route() {
  const page = location.hash.replace(/^#\//, "") || home();
  const c = claims();
  document.documentElement.lang = lang();
  document.title = `${t("title")} — Nukisashi`;
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
  document.getElementById("signout").hidden = !c;
  document.getElementById("who").textContent = c ? `${c.name || c.sub} (${t(`role_${c.role}`)}${c.lg_code ? " " + c.lg_code : ""}${c.vendor_id ? " " + c.vendor_id : ""})` : "";
  const nav = document.getElementById("nav");
  nav.replaceChildren(...(c ? [[home(), t(`page_${home()}`)]] : [["signin", t("signIn")]]).map(([p, label]) => h("a", { href: `#/${p}`, "aria-current": p === page ? "page" : false }, label)));
  const show = c ? PAGES[page === "signin" ? "signin" : home()] : signIn;
  try { await show(); } catch (e) {
    if (e.status === 401) { sessionStorage.removeItem(TOKEN_KEY); say(t("sessionExpired"), "error"); signIn(); }
    else main.replaceChildren(problemBox(e));
  }
}

document.getElementById("lang").addEventListener("click", () => { setLang(lang() === "ja" ? "en" : "ja"); route(); });
document.getElementById("signout").addEventListener("click", () => { sessionStorage.removeItem(TOKEN_KEY); location.hash = "#/signin"; route(); });
window.addEventListener("hashchange", () => { document.getElementById("status").replaceChildren(); route(); });
finishProviderSignIn().then(route);
