// onedrive-backup GUI: renders the controller's status and the engine's events; sends the
// user's choices back as JSON POSTs. No backup logic here.
"use strict";

const CSRF = document.querySelector('meta[name="csrf-token"]').content;
const $ = (id) => document.getElementById(id);
const ACTIVE = new Set(["running", "stopping", "pausing", "paused"]);
const ENDED = new Set(["finished", "stopped", "failed"]);
const MAX_LOG = 300;

let status = null;          // the latest snapshot from the server
let step = "dest";          // wizard step once signed in: dest | choose | what
let shownScreen = null;
let lastSeq = 0;
let choice = { resume: null, keep: true };
let folders = [];           // chosen OneDrive folder paths
let crumbs = [{ id: null, name: "OneDrive" }];

// --- formatting ------------------------------------------------------------------------------

function bytes(n) {
  if (n === null || n === undefined) return "–";
  const units = ["B", "KB", "MB", "GB", "TB"];
  let i = 0;
  let v = Number(n);
  while (Math.abs(v) >= 1000 && i < units.length - 1) { v /= 1000; i++; }
  return i === 0 ? `${v.toFixed(0)} B` : `${v.toFixed(1)} ${units[i]}`;
}
const num = (n) => Number(n || 0).toLocaleString("en-US");
function duration(s) {
  if (!isFinite(s) || s < 0) return "–";
  s = Math.round(s);
  if (s < 60) return `${s} s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m} min ${String(s % 60).padStart(2, "0")} s`;
  return `${Math.floor(m / 60)} h ${String(m % 60).padStart(2, "0")} min`;
}
function when(ts) {
  if (!ts) return "never";
  return new Date(ts * 1000).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}
const clock = (ts) => new Date(ts * 1000).toLocaleTimeString(undefined, { hour12: false });

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== false && v !== null && v !== undefined) node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

function showProblem(box, problem) {
  if (!problem) { box.hidden = true; box.replaceChildren(); return; }
  box.replaceChildren(el("div", { text: problem.message }));
  if (problem.hint) box.append(el("div", { class: "hint", text: problem.hint }));
  box.hidden = false;
}

// --- talking to the server ---------------------------------------------------------------------

async function post(path, body = {}) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "Content-Type": "application/json", "X-CSRF-Token": CSRF },
    body: JSON.stringify(body),
    credentials: "same-origin",
  });
  let data = null;
  try { data = await response.json(); } catch (e) { data = null; }
  if (!response.ok || !data || !data.ok) {
    const error = (data && data.error) || { message: `The request failed (HTTP ${response.status}).` };
    throw error;
  }
  return data.data;
}

async function getJson(path) {
  const response = await fetch(path, { credentials: "same-origin" });
  const data = await response.json();
  if (!response.ok || data.ok === false) throw (data.error || { message: `HTTP ${response.status}` });
  return data;
}

function connect() {
  const source = new EventSource("/api/events");
  source.addEventListener("open", () => { $("connection").hidden = true; });
  source.addEventListener("error", () => { $("connection").hidden = false; });
  source.addEventListener("status", (e) => render(JSON.parse(e.data)));
  source.addEventListener("backlog", (e) => {
    $("log").replaceChildren();
    lastSeq = 0;
    for (const line of JSON.parse(e.data)) addLog(line);
  });
  source.addEventListener("log", (e) => addLog(JSON.parse(e.data)));
}

function addLog(line) {
  if (line.seq <= lastSeq) return;
  lastSeq = line.seq;
  const log = $("log");
  const stick = log.scrollTop + log.clientHeight >= log.scrollHeight - 20;
  log.append(el("li", { class: line.level },
    el("time", { datetime: new Date(line.at * 1000).toISOString(), text: clock(line.at) }),
    el("span", { text: line.text })));
  while (log.children.length > MAX_LOG) log.firstElementChild.remove();
  if (stick) log.scrollTop = log.scrollHeight;
}

// --- which screen ------------------------------------------------------------------------------

function screenFor(s) {
  if (ACTIVE.has(s.run.state)) return "run";
  if (ENDED.has(s.run.state)) return "done";
  if (s.signin.state !== "signed_in") return "signin";
  return step;
}

function show(screen) {
  for (const section of document.querySelectorAll(".screen")) {
    section.hidden = section.id !== `screen-${screen}`;
  }
  const order = ["signin", "dest", "choose", "what", "run", "done"];
  const at = order.indexOf(screen);
  for (const li of document.querySelectorAll(".steps li")) {
    const i = order.indexOf(li.dataset.step);
    li.classList.toggle("current", i === at);
    li.classList.toggle("past", i < at);
    if (i === at) li.setAttribute("aria-current", "step"); else li.removeAttribute("aria-current");
  }
  const slot = screen === "done" ? $("done-log-slot") : $("run-log-slot");
  if ($("log").parentElement !== slot) slot.append($("log"));
  if (screen !== shownScreen) {
    shownScreen = screen;
    enter(screen);
    const heading = document.querySelector(`#screen-${screen} h1`);
    if (heading) { heading.setAttribute("tabindex", "-1"); heading.focus({ preventScroll: true }); }
  }
}

function goto(next) {
  step = next;
  render(status);
}

// Called once when a screen appears: fill inputs from the status (never while typing).
function enter(screen) {
  if (screen === "dest" && status.destination && !$("dest-path").value) {
    $("dest-path").value = status.destination.path || "";
  }
  if (screen === "choose") renderChoices();
  if (screen === "what") {
    $("what-mode").textContent = choice.resume
      ? `Resuming ${choice.resume} with a new choice of files.`
      : "A new backup. Choose everything, or narrow it down.";
    $("what-error").hidden = true;
  }
}

// --- rendering ---------------------------------------------------------------------------------

function render(s) {
  if (!s) return;
  status = s;
  renderAccount(s.signin);
  renderSignIn(s.signin);
  renderDestination(s.destination);
  renderRun(s.run);
  renderDone(s.run, s.verify);
  show(screenFor(s));
}

function quotaText(a) {
  if (!a || a.quota_used === null || a.quota_used === undefined || !a.quota_total) return "";
  return `${bytes(a.quota_used)} of ${bytes(a.quota_total)} used`;
}

function renderAccount(signin) {
  const a = signin.account;
  const on = signin.state === "signed_in" && a;
  $("account").hidden = !on;
  if (!on) return;
  $("account-name").textContent = a.display_name ? `${a.display_name} (${a.username})` : a.username;
  $("account-quota").textContent = [a.drive_type && a.drive_type !== "unknown" ? `${a.drive_type} OneDrive` : "", quotaText(a)].filter(Boolean).join(" · ");
  const card = $("account-card");
  card.hidden = false;
  const bar = a.quota_total ? el("progress", { max: a.quota_total, value: a.quota_used || 0, "aria-label": "OneDrive storage used" }) : null;
  card.replaceChildren(
    el("div", {}, el("strong", { text: `Signed in as ${a.display_name || a.username}` }),
      el("div", { class: "muted", text: a.username })),
    el("div", { class: "quota" }, el("div", { class: "muted", text: quotaText(a) || "Quota unknown" }), bar));
  showProblem($("signin-error"), signin.error);
}

function renderSignIn(signin) {
  const st = signin.state;
  $("signin-checking").hidden = st !== "checking";
  $("signin-out").hidden = !(st === "signed_out" || st === "error");
  $("signin-waiting").hidden = st !== "waiting";
  const hasCode = st === "waiting" && signin.user_code;
  $("signin-code-box").hidden = !hasCode;
  $("signin-code-intro").hidden = !!hasCode;
  if (hasCode) {
    $("signin-code").textContent = signin.user_code;
    $("signin-link").textContent = signin.verification_uri;
    $("signin-link").href = signin.verification_uri;
  }
  if (st !== "signed_in") showProblem($("signin-error"), signin.error);
}

function renderDestination(d) {
  const box = $("dest-result");
  $("dest-next").disabled = !(d && d.ok);
  if (!d) { box.replaceChildren(); return; }
  if (!d.ok) {
    const b = el("div", { class: "banner error", role: "alert" });
    showProblem(b, { message: d.error, hint: d.hint });
    box.replaceChildren(b);
    return;
  }
  const parts = [el("p", { class: "dest-ok" }, `✓ ${d.path} is writable: ${bytes(d.free)} free of ${bytes(d.total)}.`)];
  const backups = d.backups || [];
  if (backups.length) {
    const rows = backups.map((b) => el("tr", {},
      el("td", {}, el("span", { class: "path", text: b.name })),
      el("td", {}, badge(b)),
      el("td", { text: `${num(b.files_done)} / ${num(b.files_total)} files, ${bytes(b.bytes_done)}` }),
      el("td", { text: when(b.last_run_at) })));
    parts.push(el("p", { text: `${backups.length === 1 ? "One backup is" : `${backups.length} backups are`} already here:` }),
      el("table", { class: "backup-table" },
        el("thead", {}, el("tr", {}, el("th", { text: "Backup" }), el("th", { text: "State" }), el("th", { text: "Progress" }), el("th", { text: "Last run" }))),
        el("tbody", {}, ...rows)));
  } else {
    parts.push(el("p", { class: "muted", text: "No backups here yet: a new one will be made." }));
  }
  box.replaceChildren(...parts);
}

function badge(b) {
  if (b.error) return el("span", { class: "badge unreadable", text: "Unreadable", title: b.error });
  return b.complete ? el("span", { class: "badge complete", text: "Complete" })
    : el("span", { class: "badge unfinished", text: "Unfinished" });
}

function renderChoices() {
  const d = status.destination;
  $("choose-dest").textContent = d.path;
  const list = $("choose-list");
  const items = [el("label", { class: "choice" },
    el("input", { type: "radio", name: "backup", value: "", checked: !choice.resume }),
    el("span", {}, el("strong", { text: "Start a new backup" }),
      el("span", { class: "muted", text: "A new dated folder; files already backed up elsewhere are downloaded again." })))];
  for (const b of d.backups || []) {
    const info = b.error ? b.error
      : `${num(b.files_done)} of ${num(b.files_total)} files, ${bytes(b.bytes_done)} of ${bytes(b.bytes_total)}; last run ${when(b.last_run_at)}`;
    items.push(el("label", { class: "choice" },
      el("input", { type: "radio", name: "backup", value: b.name, checked: choice.resume === b.name, disabled: !!b.error }),
      el("span", {}, el("strong", {}, `${b.complete ? "Update" : "Resume"} ${b.name}`, badge(b)),
        el("span", { class: "muted", text: info }))));
  }
  list.replaceChildren(...items);
  syncKeepRow();
}

function syncKeepRow() {
  const picked = document.querySelector('input[name="backup"]:checked');
  choice.resume = picked && picked.value ? picked.value : null;
  $("keep-row").hidden = !choice.resume;
  $("choose-next").textContent = choice.resume && $("keep-selection").checked ? "Resume backup" : "Continue";
}

function renderRun(run) {
  const active = ACTIVE.has(run.state);
  if (!active) return;
  const titles = { running: "Backing up", stopping: "Stopping…", pausing: "Pausing…", paused: "Paused" };
  $("run-title").textContent = titles[run.state] || "Backing up";
  $("run-name").textContent = run.backup_name || "";
  const sel = run.selection && run.selection.text;
  $("run-selection").textContent = sel ? `· ${sel === "all" ? "all files" : sel}` : "";
  const order = ["scan", "space", "download"];
  const at = order.indexOf(run.phase);
  for (const li of document.querySelectorAll(".phases li")) {
    const i = order.indexOf(li.dataset.phase);
    li.classList.toggle("current", i === at);
    li.classList.toggle("past", at > i);
  }
  const p = run.progress;
  const scan = run.scan;
  let phaseText = "Starting…";
  if (run.state === "paused") phaseText = "Paused. Everything downloaded so far is saved.";
  else if (run.phase === "scan") phaseText = scan ? `Scanning OneDrive: ${num(scan.items_seen)} items seen, ${num(scan.files_selected)} files selected (${bytes(scan.bytes_selected)})` : "Scanning OneDrive…";
  else if (run.phase === "space" && run.space) phaseText = `Checking space: ${bytes(run.space.needed)} needed, ${bytes(run.space.free)} free`;
  else if (run.phase === "download") phaseText = p ? `Downloading ${num(p.files_total)} files (${bytes(p.bytes_total)})` : "Downloading…";
  $("run-phase").textContent = phaseText;
  if (p) {
    setBar("files-bar", p.files_done, p.files_total);
    setBar("bytes-bar", p.bytes_done, p.bytes_total);
    $("files-text").textContent = `${num(p.files_done)} of ${num(p.files_total)}`;
    $("bytes-text").textContent = `${bytes(p.bytes_done)} of ${bytes(p.bytes_total)}`;
    const moving = run.state === "running" && p.rate > 0;
    $("rate-text").textContent = moving ? `${bytes(p.rate)}/s` : "–";
    $("eta-text").textContent = moving ? duration((p.bytes_total - p.bytes_done) / p.rate) : "–";
    $("active-text").textContent = num(p.active);
  } else if (scan) {
    $("files-text").textContent = `${num(scan.files_selected)} selected so far`;
    $("bytes-text").textContent = bytes(scan.bytes_selected);
    $("files-bar").removeAttribute("value");
    $("bytes-bar").removeAttribute("value");
  }
  $("failed-text").textContent = num((run.counts.failed || 0) + (run.counts.unverified || 0));
  const notice = $("run-notice");
  if (run.network) {
    notice.textContent = `Network down (${run.network.reason}). Retrying in ${duration(run.network.retry_in)}; down for ${duration(run.network.down_for)}. Nothing is lost.`;
    notice.hidden = false;
  } else if (run.throttled && run.throttled.until * 1000 > Date.now()) {
    notice.textContent = `OneDrive asked us to slow down (HTTP ${run.throttled.status}); waiting ${duration(run.throttled.seconds)}.`;
    notice.hidden = false;
  } else notice.hidden = true;
  $("pause").hidden = run.state !== "running";
  $("pause-note").hidden = run.state !== "running";
  $("resume-run").hidden = run.state !== "paused";
  $("stop").hidden = run.state !== "running" && run.state !== "paused";
  $("stop").textContent = run.state === "paused" ? "Finish for now" : "Stop";
  renderFailures($("run-failures"), run.failures);
}

function setBar(id, done, total) {
  const bar = $(id);
  bar.max = Math.max(total, 1);
  bar.value = total ? done : 1;
}

function renderFailures(box, failures) {
  const reasons = Object.entries(failures || {}).sort((a, b) => b[1].count - a[1].count);
  box.hidden = reasons.length === 0;
  const total = reasons.reduce((n, [, f]) => n + f.count, 0);
  box.querySelector("summary").textContent = `${num(total)} failed file${total === 1 ? "" : "s"}, by reason`;
  box.querySelector("ul").replaceChildren(...reasons.map(([reason, f]) => el("li", {},
    el("strong", { text: `${num(f.count)} × ${reason}` }),
    el("div", { class: "examples", text: `e.g. ${f.examples.join(", ")}` }))));
}

function renderDone(run, verify) {
  if (!ENDED.has(run.state)) return;
  const s = run.summary;
  const verdict = $("done-verdict");
  let title = "Backup finished";
  let cls = "banner ok";
  let text = "Every selected file is backed up and verified.";
  if (run.state === "stopped") {
    title = "Backup stopped"; cls = "banner warning";
    text = "Everything downloaded so far is saved. Resume to continue where it stopped.";
  } else if (run.state === "failed") {
    title = "The backup stopped because of a problem"; cls = "banner error";
    text = run.error ? run.error.message : "Unknown problem.";
  } else if (run.exit_code !== 0) {
    title = "Backup finished with some failures"; cls = "banner warning";
    text = "Most files are backed up; the ones below failed. Resume later to try them again.";
  }
  $("done-title").textContent = title;
  verdict.className = cls;
  verdict.replaceChildren(el("div", { text }));
  if (run.error && run.error.hint && run.state === "failed") verdict.append(el("div", { class: "hint", text: run.error.hint }));
  $("done-path").textContent = run.backup_dir || "(none yet)";
  const rows = [];
  if (s && s.files) {
    const f = s.files;
    rows.push(["Files backed up", `${num(f.done)} of ${num(f.selected)}`],
      ["Downloaded this run", num(f.downloaded_this_run)],
      ["Already on disk (kept)", num(f.adopted_this_run)],
      ["Failed", num(f.failed)],
      ["Unverified", num(f.unverified)],
      ["Still to do", num(f.pending)],
      ["Downloaded", bytes(s.bytes.downloaded)],
      ["Selected in total", bytes(s.bytes.selected)],
      ["Time", duration((s.finished || 0) - (s.started || 0))],
      ["Sign-in renewals", num(run.counts.token_refreshes)],
      ["Download links renewed", num(s.link_refreshes)],
      ["Throttled", `${num(s.throttled)} times`],
      ["Network outages", `${num(s.outages)} (${duration(s.outage_seconds)})`]);
  } else {
    const c = run.counts;
    const b = run.backup;
    if (b) rows.push(["Files backed up", `${num(b.files_done)} of ${num(b.files_total)}`],
      ["Data backed up", `${bytes(b.bytes_done)} of ${bytes(b.bytes_total)}`]);
    rows.push(["Files done this run", num((c.done || 0) + (c.adopted || 0))], ["Failed this run", num(c.failed)],
      ["Time", duration((run.finished_at || 0) - (run.started_at || 0))]);
  }
  $("done-summary").replaceChildren(...rows.map(([k, v]) => el("div", {}, el("dt", { text: k }), el("dd", { text: v }))));
  renderFailures($("done-failures"), run.failures);
  $("open-folder").disabled = !run.backup_dir;
  $("verify").disabled = !run.backup_dir || verify.state === "running";
  $("verify").textContent = verify.state === "running" ? "Verifying…" : "Verify files";
  $("done-resume").hidden = !(run.state !== "finished" && run.backup_name) && !(run.state === "finished" && run.exit_code !== 0 && run.backup_name);
  const vr = $("verify-result");
  if (verify.state === "done") {
    vr.className = verify.ok ? "banner ok" : "banner error";
    vr.replaceChildren(...verify.lines.slice(0, 12).map((l) => el("div", { text: l })));
    vr.hidden = false;
  } else if (verify.state === "failed") {
    vr.className = "banner error";
    showProblem(vr, verify.error);
  } else if (verify.state === "running") {
    vr.className = "banner";
    vr.replaceChildren(el("span", { class: "spinner", "aria-hidden": "true" }), "Re-reading every file and checking its hash…");
    vr.hidden = false;
  } else vr.hidden = true;
}

// --- folder picker -----------------------------------------------------------------------------

function folderPath(extra) {
  const names = crumbs.slice(1).map((c) => c.name);
  if (extra) names.push(extra);
  return "/" + names.join("/");
}

async function browse() {
  const here = crumbs[crumbs.length - 1];
  $("picker-status").textContent = "Loading…";
  $("picker-crumbs").replaceChildren(...crumbs.flatMap((c, i) => {
    const b = el("button", { type: "button", text: c.name, onclick: () => { crumbs = crumbs.slice(0, i + 1); browse(); } });
    if (i === crumbs.length - 1) b.setAttribute("aria-current", "location");
    return i ? [el("span", { text: "›", "aria-hidden": "true" }), b] : [b];
  }));
  $("picker-add-here").hidden = crumbs.length === 1;
  try {
    const data = await getJson(here.id ? `/api/browse?id=${encodeURIComponent(here.id)}` : "/api/browse");
    const children = data.data;
    const subfolders = children.filter((c) => c.folder);
    const files = children.length - subfolders.length;
    $("picker-list").replaceChildren(...subfolders.map((c) => el("li", {},
      el("button", { type: "button", class: "open", text: c.name, title: `Open ${c.name}`,
        onclick: () => { crumbs.push({ id: c.id, name: c.name }); browse(); } }),
      el("button", { type: "button", class: "add secondary", text: folders.includes(folderPath(c.name)) ? "Added" : "Add",
        "aria-label": `Back up the folder ${c.name}`, disabled: folders.includes(folderPath(c.name)),
        onclick: (e) => { addFolder(folderPath(c.name)); e.target.textContent = "Added"; e.target.disabled = true; } }))));
    if (files) $("picker-list").append(el("li", {}, el("span", { class: "file", text: `${num(files)} file${files === 1 ? "" : "s"} in this folder` })));
    $("picker-status").textContent = subfolders.length ? "" : "No folders here.";
  } catch (err) {
    $("picker-status").textContent = err.message || "Could not list this folder.";
  }
}

function addFolder(path) {
  if (!folders.includes(path)) folders.push(path);
  renderFolders();
}

function renderFolders() {
  $("folders-chosen").replaceChildren(...folders.map((f) => el("li", {}, el("span", { class: "path", text: f }),
    el("button", { type: "button", text: "×", "aria-label": `Remove ${f}`,
      onclick: () => { folders = folders.filter((x) => x !== f); renderFolders(); } }))));
}

// --- actions -----------------------------------------------------------------------------------

function lines(id) {
  return $(id).value.split("\n").map((x) => x.trim()).filter(Boolean);
}

function categories() {
  return [...document.querySelectorAll('input[name="category"]:checked')].map((c) => c.value);
}

async function act(path, body, errorBox) {
  try {
    if (errorBox) errorBox.hidden = true;
    return await post(path, body);
  } catch (err) {
    if (errorBox) showProblem(errorBox, err);
    else alert(err.message + (err.hint ? `\n${err.hint}` : ""));
    return undefined;
  }
}

function wire() {
  $("signin-start").addEventListener("click", () => act("/api/signin/start", {}, $("signin-error")));
  $("signin-copy").addEventListener("click", async () => {
    try { await navigator.clipboard.writeText($("signin-code").textContent); $("signin-copy").textContent = "Copied"; }
    catch (e) { $("signin-copy").textContent = "Select and copy the code"; }
  });
  $("sign-out").addEventListener("click", () => { step = "dest"; act("/api/signin/signout", {}); });
  $("dest-form").addEventListener("submit", async (e) => {
    e.preventDefault();
    $("dest-result").replaceChildren(el("p", { class: "muted" }, el("span", { class: "spinner", "aria-hidden": "true" }), "Checking…"));
    await act("/api/destination", { path: $("dest-path").value });
  });
  $("dest-next").addEventListener("click", () => {
    const backups = (status.destination && status.destination.backups) || [];
    choice = { resume: null, keep: true };
    goto(backups.some((b) => !b.error) ? "choose" : "what");
  });
  $("choose-list").addEventListener("change", syncKeepRow);
  $("keep-selection").addEventListener("change", syncKeepRow);
  $("choose-next").addEventListener("click", () => {
    syncKeepRow();
    if (choice.resume && $("keep-selection").checked) {
      act("/api/backup/start", { resume: choice.resume, keep_selection: true }, null);
    } else goto("what");
  });
  for (const b of document.querySelectorAll("[data-goto]")) b.addEventListener("click", () => goto(b.dataset.goto));
  $("what-back").addEventListener("click", () => {
    const backups = (status.destination && status.destination.backups) || [];
    goto(backups.length ? "choose" : "dest");
  });
  for (const box of document.querySelectorAll('input[name="category"]')) {
    box.addEventListener("change", () => {
      const all = document.querySelector('input[name="category"][value="all"]');
      if (box.value === "all" && box.checked) {
        for (const other of document.querySelectorAll('input[name="category"]')) if (other !== all) other.checked = false;
      } else if (box.checked) all.checked = false;
      if (!categories().length) all.checked = true;
    });
  }
  $("picker-open").addEventListener("click", () => {
    const open = $("picker").hidden;
    $("picker").hidden = !open;
    $("picker-open").setAttribute("aria-expanded", String(open));
    if (open) { crumbs = [{ id: null, name: "OneDrive" }]; browse(); }
  });
  $("picker-close").addEventListener("click", () => {
    $("picker").hidden = true;
    $("picker-open").setAttribute("aria-expanded", "false");
    $("picker-open").focus();
  });
  $("picker-add-here").addEventListener("click", () => addFolder(folderPath()));
  $("start").addEventListener("click", () => act("/api/backup/start", {
    resume: choice.resume, keep_selection: false, categories: categories().filter((c) => c !== "all"),
    folders, include: lines("include"), exclude: lines("exclude"),
    include_shared: $("include-shared").checked,
  }, $("what-error")));
  $("pause").addEventListener("click", () => act("/api/backup/pause", {}));
  $("stop").addEventListener("click", () => act("/api/backup/stop", {}));
  $("resume-run").addEventListener("click", () => act("/api/backup/resume", {}));
  $("done-resume").addEventListener("click", () => act("/api/backup/resume", {}));
  $("open-folder").addEventListener("click", () => act("/api/backup/open-folder", {}, $("done-error")));
  $("verify").addEventListener("click", () => act("/api/backup/verify", {}, $("done-error")));
  $("done-new").addEventListener("click", () => { step = "dest"; act("/api/backup/dismiss", {}); });
}

wire();
getJson("/api/status").then((s) => {
  render(s);
  for (const line of s.log || []) addLog(line);
}).catch(() => { $("connection").hidden = false; }).finally(connect);
