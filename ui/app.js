// ui/app.js — BucketFTP's window: renders what the Rust commands return and sends the
// user's clicks to them. No business logic here: validation, secrets, URLs, speeds and
// translations all come from the app (src-tauri); this file only displays them.
"use strict";

const { invoke } = window.__TAURI__.core;
const { listen } = window.__TAURI__.event;

const $ = (id) => document.getElementById(id);
const state = { strings: {}, lang: "en", languages: [], presets: [], profiles: [], status: { state: "stopped" }, view: "profiles", connectId: null, revealed: false };

// ----- strings --------------------------------------------------------------------------
function t(key, args) {
  let s = state.strings[key] ?? key;
  if (args) for (const [k, v] of Object.entries(args)) s = s.split("{" + k + "}").join(String(v));
  return s;
}
function errorText(e) {
  if (e && typeof e === "object" && e.key) return state.strings[e.key] ? t(e.key, { detail: e.detail }) : e.message;
  return String(e);
}
function applyStrings() {
  document.documentElement.lang = state.lang;
  document.querySelectorAll("[data-i18n]").forEach((el) => { el.textContent = t(el.dataset.i18n); });
  document.title = t("app.title");
}
async function loadStrings(lang) {
  const v = await invoke("strings", lang ? { lang } : {});
  state.strings = v.strings; state.lang = v.lang; state.languages = v.languages;
  applyStrings();
  document.getElementById("st-version").textContent = v.version;
}
function setMessage(el, text, kind) { el.textContent = text || ""; el.className = "message" + (kind ? " " + kind : ""); }
function fmtBytes(n) {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"]; let i = 0; let v = n;
  while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
  return (i ? v.toFixed(1) : String(v)) + " " + units[i];
}
function fmtTime(ms) { return new Date(ms).toLocaleTimeString(state.lang); }
function el(tag, props, ...children) {
  const e = document.createElement(tag);
  Object.assign(e, props || {});
  for (const c of children) e.append(c);
  return e;
}

// ----- server status --------------------------------------------------------------------
function renderStatus() {
  const s = state.status;
  $("status-dot").className = "dot " + s.state;
  $("status-text").textContent = s.state === "running" ? t("status.running", { address: s.address })
    : s.state === "error" ? t("status.error", { message: s.message }) : t("status.stopped");
  $("server-start").disabled = s.state === "running";
  $("server-stop").disabled = s.state !== "running";
  $("cn-stopped").hidden = s.state === "running";
}
async function serverAction(cmd) {
  try { state.status = await invoke(cmd); }
  catch (e) { state.status = { state: "error", message: errorText(e) }; }
  renderStatus(); if (state.view === "connect") renderConnect();
}

// ----- notices --------------------------------------------------------------------------
async function renderNotices() {
  const list = await invoke("notices");
  const box = $("notices"); box.replaceChildren();
  list.forEach((n, i) => {
    const b = el("button", { type: "button", textContent: t("notice.dismiss") });
    b.onclick = async () => { await invoke("dismiss_notice", { index: i }); renderNotices(); };
    box.append(el("div", { className: "notice" }, el("span", { textContent: t(n.key, n.args) }), b));
  });
}

// ----- views ----------------------------------------------------------------------------
function show(view) {
  state.view = view;
  document.querySelectorAll(".view").forEach((v) => { v.hidden = v.id !== "view-" + view; });
  document.querySelectorAll(".tab").forEach((b) => b.classList.toggle("active", b.dataset.view === view));
  if (view === "connect") renderConnect();
  if (view === "activity") renderActivity();
  if (view === "settings") renderSettings();
}

// ----- profiles -------------------------------------------------------------------------
function profileName(p) { return p.local ? t("profile.local_name") : p.name; }
function providerLabel(id) { return t("provider." + id); }
async function loadProfiles() {
  state.profiles = await invoke("list_profiles");
  const ul = $("profile-list"); ul.replaceChildren();
  for (const p of state.profiles) {
    const li = el("li", { id: "profile-" + p.id });
    li.append(el("div", { className: "name", textContent: profileName(p) }));
    li.append(el("div", { className: "sub", textContent: p.local ? t("profiles.builtin", { folder: p.folder || "" }) : providerLabel(p.provider) + (p.region ? " · " + p.region : "") }));
    li.append(el("div", { className: "sub mono", textContent: t("profiles.login", { user: p.user }) }));
    if (!p.local) {
      li.append(el("div", { className: "sub", textContent: p.has_secret ? t("profiles.secret_stored") : t("profiles.secret_missing") }));
      const edit = el("button", { type: "button", className: "edit", textContent: t("profiles.edit") });
      edit.onclick = () => openForm(p);
      const del = el("button", { type: "button", className: "delete", textContent: t("profiles.delete") });
      del.onclick = () => deleteProfile(p);
      li.append(el("div", { className: "actions" }, edit, del));
    }
    ul.append(li);
  }
  fillProfileSelect($("cn-profile"), state.connectId);
  fillProfileSelect($("st-default-profile"), $("st-default-profile").value);
}
function fillProfileSelect(select, selected) {
  select.replaceChildren(...state.profiles.map((p) => el("option", { value: p.id, textContent: profileName(p), selected: p.id === selected })));
}
function fillProviders() {
  $("pf-provider").replaceChildren(...state.presets.map((p) => el("option", { value: p.id, textContent: providerLabel(p.id) })));
}
function presetOf(id) { return state.presets.find((p) => p.id === id); }
function onProviderChange(keepValues) {
  const pre = presetOf($("pf-provider").value); if (!pre) return;
  $("pf-regions").replaceChildren(...pre.regions.map((r) => el("option", { value: r })));
  if (!keepValues) { $("pf-region").value = pre.default_region; }
  updateEndpoint(keepValues);
}
function updateEndpoint(keepValue) {
  const pre = presetOf($("pf-provider").value); if (!pre) return;
  const ep = $("pf-endpoint");
  ep.placeholder = pre.endpoint_required ? t("field.endpoint_required") : (pre.endpoint_template || "").replace("{region}", $("pf-region").value || pre.default_region);
  // The preset's endpoint fills the field and stays editable.
  if (!keepValue && pre.endpoint_template) ep.value = pre.endpoint_template.replace("{region}", $("pf-region").value || pre.default_region);
  if (!keepValue && !pre.endpoint_template) ep.value = "";
}
function openForm(p) {
  const f = $("profile-form"); f.hidden = false;
  $("pf-title").textContent = p ? t("profiles.editing") : t("profiles.new");
  $("pf-id").value = p ? p.id : "";
  $("pf-name").value = p ? p.name : "";
  $("pf-provider").value = p ? p.provider : "aws";
  onProviderChange(!!p);
  $("pf-region").value = p ? (p.region || "") : $("pf-region").value;
  $("pf-endpoint").value = p ? (p.endpoint || "") : $("pf-endpoint").value;
  $("pf-addressing").value = p && p.addressing ? p.addressing : "";
  $("pf-access-key").value = p ? p.access_key : "";
  $("pf-secret").value = "";
  $("pf-secret").placeholder = p ? t("field.secret_keep") : t("field.secret_new");
  $("pf-bucket").value = p ? p.bucket : "";
  setMessage($("pf-result"), "");
}
function formInput() {
  return {
    id: $("pf-id").value, name: $("pf-name").value, provider: $("pf-provider").value,
    region: $("pf-region").value, endpoint: $("pf-endpoint").value,
    addressing: $("pf-addressing").value || null, access_key: $("pf-access-key").value,
    secret: $("pf-secret").value, bucket: $("pf-bucket").value,
  };
}
async function testConnection() {
  setMessage($("pf-result"), t("profiles.testing"));
  $("pf-test").disabled = true;
  try {
    const r = await invoke("test_connection", { profile: formInput() });
    setMessage($("pf-result"), t(r.key, r.args), r.ok ? "ok" : "bad");
  } catch (e) { setMessage($("pf-result"), errorText(e), "bad"); }
  $("pf-test").disabled = false;
}
async function saveProfile(ev) {
  ev.preventDefault();
  try {
    const saved = await invoke("save_profile", { profile: formInput() });
    $("profile-form").hidden = true;
    setMessage($("profiles-message"), t("profiles.saved"), "ok");
    state.connectId = state.connectId || saved.id;
    await loadProfiles();
  } catch (e) { setMessage($("pf-result"), errorText(e), "bad"); }
}
async function deleteProfile(p) {
  if (!window.confirm(t("profiles.confirm_delete", { name: p.name }))) return;
  try { await invoke("delete_profile", { id: p.id }); setMessage($("profiles-message"), t("profiles.deleted"), "ok"); }
  catch (e) { setMessage($("profiles-message"), errorText(e), "bad"); }
  $("profile-form").hidden = true;
  await loadProfiles();
}

// ----- connect --------------------------------------------------------------------------
async function renderConnect() {
  const id = $("cn-profile").value || (state.profiles[0] && state.profiles[0].id);
  if (!id) return;
  state.connectId = id;
  try {
    const c = await invoke("connect_info", { profile_id: id });
    $("cn-protocol").textContent = c.fingerprint ? t("connect.protocol_value") : t("connect.protocol_plain");
    $("cn-encryption").textContent = c.fingerprint ? t("connect.encryption_tls") : t("connect.encryption_plain");
    $("cn-host").textContent = c.host;
    $("cn-port").textContent = String(c.port);
    $("cn-user").textContent = c.user + (c.bucket_missing ? " " + t("connect.no_bucket") : "");
    $("cn-url").textContent = c.url;
    $("cn-fp-row").hidden = !c.fingerprint;
    $("cn-fp-hint-row").hidden = !c.fingerprint;
    $("cn-fingerprint").textContent = c.fingerprint || "";
    $("cn-stopped").hidden = c.running;
    if (!state.revealed) $("cn-password").textContent = c.has_secret ? "••••••••" : t("connect.no_secret");
  } catch (e) { setMessage($("cn-message"), errorText(e), "bad"); }
}
async function toggleReveal() {
  state.revealed = !state.revealed;
  $("cn-reveal").textContent = state.revealed ? t("connect.hide") : t("connect.show");
  if (state.revealed) {
    try { const s = await invoke("reveal_secret", { profile_id: state.connectId }); $("cn-password").textContent = s ?? t("connect.no_secret"); }
    catch (e) { $("cn-password").textContent = errorText(e); }
  } else { renderConnect(); }
}
async function exportSites() {
  try {
    const r = await invoke("export_filezilla_sites", { include_secrets: $("cn-export-secrets").checked });
    const lines = [t("connect.exported", { sites: r.sites, path: r.path }), t("connect.import_hint")];
    if (r.with_secrets) lines.push(t("connect.exported_secrets"));
    if (r.skipped.length) lines.push(t("connect.export_skipped", { names: r.skipped.join(", ") }));
    setMessage($("cn-export-message"), lines.join("\n"), "ok");
  } catch (e) { setMessage($("cn-export-message"), errorText(e), "bad"); }
}
async function copyField(field) {
  try { await invoke("copy_field", { profile_id: state.connectId, field }); setMessage($("cn-message"), t("connect.copied"), "ok"); }
  catch (e) { setMessage($("cn-message"), errorText(e), "bad"); }
}

// ----- activity -------------------------------------------------------------------------
function lineText(l) {
  const args = { ...l.args };
  if (args.direction) args.direction = t("dir." + args.direction);
  return t(l.key, args);
}
async function renderActivity() {
  const a = await invoke("activity");
  const sb = $("sessions-body"); sb.replaceChildren();
  if (!a.sessions.length) sb.append(el("tr", {}, el("td", { className: "empty", colSpan: 3, textContent: t("activity.none_sessions") })));
  for (const s of a.sessions) sb.append(el("tr", { className: "session" }, el("td", { className: "mono", textContent: s.user || t("user.anonymous") }), el("td", { className: "mono", textContent: s.client }), el("td", { textContent: fmtTime(s.since_ms) })));
  const tb = $("transfers-body"); tb.replaceChildren();
  if (!a.transfers.length) tb.append(el("tr", {}, el("td", { className: "empty", colSpan: 6, textContent: t("activity.none_transfers") })));
  for (const x of a.transfers) {
    const progress = x.percent == null ? el("span", { textContent: "—" }) : el("progress", { max: 100, value: x.percent });
    const o = x.outcome;
    const outcome = o.state === "running" ? t("outcome.running") : o.state === "done" ? t("outcome.done") : t("outcome.failed", { reason: o.reason });
    tb.append(el("tr", { className: "transfer " + o.state },
      el("td", { textContent: t("dir." + x.direction) }), el("td", { className: "mono", textContent: x.name, title: x.path }),
      el("td", { textContent: fmtBytes(x.bytes) + (x.size != null ? " / " + fmtBytes(x.size) : "") }), el("td", {}, progress),
      el("td", { textContent: fmtBytes(x.speed_bps) + "/s" }), el("td", { className: "outcome-" + o.state, textContent: outcome })));
    if (x.insecure) tb.append(el("tr", { className: "insecure-note" }, el("td", { colSpan: 6, textContent: "⚠ " + t("activity.insecure_upload") })));
  }
  const eb = $("errors-list"); eb.replaceChildren();
  if (!a.errors.length) eb.append(el("li", { className: "none", textContent: t("activity.none_errors") }));
  for (const e of a.errors) eb.append(el("li", { textContent: fmtTime(e.at_ms) + "  " + lineText(e) }));
  const log = $("log-tail");
  log.textContent = a.log.map((l) => fmtTime(l.at_ms) + "  " + lineText(l)).join("\n");
  log.scrollTop = log.scrollHeight;
}
let activityTimer = null;
function activitySoon() {
  if (state.view !== "activity" || activityTimer) return;
  activityTimer = setTimeout(() => { activityTimer = null; renderActivity(); }, 150);
}

// ----- settings -------------------------------------------------------------------------
async function renderSettings() {
  const s = await invoke("get_settings");
  $("st-listen-port").value = s.listen_port;
  $("st-passive-ports").value = s.passive_ports;
  $("st-part-size").value = s.part_size_mib;
  $("st-parts-in-flight").value = s.parts_in_flight;
  $("st-read-only").checked = s.read_only;
  $("st-allow-delete").checked = s.allow_delete;
  $("st-require-tls").checked = s.require_tls;
  $("st-start-server").checked = s.start_server_on_launch;
  $("st-start-at-login").checked = s.start_at_login;
  fillProfileSelect($("st-default-profile"), s.default_profile);
  const langs = [["auto", t("settings.language_auto")], ...state.languages];
  $("st-language").replaceChildren(...langs.map(([code, name]) => el("option", { value: code, textContent: name, selected: code === s.language })));
}
async function saveSettings(ev) {
  ev.preventDefault();
  const s = {
    listen_port: Number($("st-listen-port").value), passive_ports: $("st-passive-ports").value,
    part_size_mib: Number($("st-part-size").value), parts_in_flight: Number($("st-parts-in-flight").value),
    read_only: $("st-read-only").checked, allow_delete: $("st-allow-delete").checked,
    require_tls: $("st-require-tls").checked,
    start_server_on_launch: $("st-start-server").checked, start_at_login: $("st-start-at-login").checked,
    language: $("st-language").value, default_profile: $("st-default-profile").value,
  };
  try {
    const r = await invoke("save_settings", { settings: s });
    await loadStrings();
    await refreshAll();
    setMessage($("st-message"), r.restarted ? t("settings.saved_restarted") : t("settings.saved"), "ok");
  } catch (e) { setMessage($("st-message"), errorText(e), "bad"); }
}

// ----- start ----------------------------------------------------------------------------
async function refreshAll() {
  state.status = await invoke("server_status");
  renderStatus();
  fillProviders();
  await loadProfiles();
  await renderNotices();
  show(state.view);
}
async function main() {
  await loadStrings();
  state.presets = await invoke("provider_presets");
  document.querySelectorAll(".tab").forEach((b) => { b.onclick = () => show(b.dataset.view); });
  $("server-start").onclick = () => serverAction("start_server");
  $("server-stop").onclick = () => serverAction("stop_server");
  $("profiles-add").onclick = () => openForm(null);
  $("pf-provider").onchange = () => onProviderChange(false);
  $("pf-region").onchange = () => updateEndpoint(false);
  $("pf-test").onclick = testConnection;
  $("profile-form").onsubmit = saveProfile;
  $("pf-cancel").onclick = () => { $("profile-form").hidden = true; };
  $("cn-profile").onchange = () => { state.revealed = false; $("cn-reveal").textContent = t("connect.show"); renderConnect(); };
  $("cn-reveal").onclick = toggleReveal;
  $("cn-export").onclick = exportSites;
  document.querySelectorAll("button.copy").forEach((b) => { b.onclick = () => copyField(b.dataset.field); });
  $("settings-form").onsubmit = saveSettings;
  await listen("server-status", (e) => { state.status = e.payload; renderStatus(); if (state.view === "connect") renderConnect(); activitySoon(); });
  await listen("gateway-event", activitySoon);
  await listen("profiles-changed", loadProfiles);
  await listen("notices-changed", renderNotices);
  await refreshAll();
  document.body.dataset.ready = "1";
}
main().catch((e) => { document.body.dataset.ready = "error"; console.error(e); $("status-text").textContent = String(e); });
