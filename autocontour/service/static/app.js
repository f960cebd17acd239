// The page: logging in, the case history with live job progress, uploads; a chosen result
// opens in the viewer (result.js).

import { ApiError, api, el, setCsrf, upload, when, whenUnauthorized } from "./api.js";
import { ResultPanel } from "./result.js";

const $ = (id) => document.getElementById(id);
const FINAL = new Set(["done", "failed", "cancelled"]);
const MAX_STREAMS = 2;

const page = {
  user: null,
  cases: [],
  streams: new Map(), // job id -> EventSource
  polled: new Set(), // ids of the jobs followed by polling
  pollTimer: null,
  follow: null, // the case just uploaded: its first result opens by itself
  chosen: [], // the CT files chosen for the next upload
  panel: null,
};

// --- logging in and out --------------------------------------------------------------------
function showLogin(message = "") {
  page.user = null;
  for (const stream of page.streams.values()) stream.close();
  page.streams.clear();
  page.polled.clear();
  page.panel?.close();
  $("workspace").hidden = true;
  $("account").hidden = true;
  $("login-section").hidden = false;
  $("login-error").textContent = message;
  $("login-name").focus();
}

function showWorkspace(name) {
  page.user = name;
  $("user-name").textContent = name;
  $("account").hidden = false;
  $("login-section").hidden = true;
  $("workspace").hidden = false;
  loadCases().then(openFromAddress);
}

$("login-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const name = $("login-name").value.trim();
  const password = $("login-password").value;
  if (!name || !password) {
    $("login-error").textContent = "Enter your user name and your password.";
    return;
  }
  $("login-error").textContent = "";
  try {
    const answer = await api("/api/login", { method: "POST", json: { name, password } });
    setCsrf(answer.csrf_token);
    $("login-password").value = "";
    showWorkspace(answer.user);
  } catch (error) {
    $("login-error").textContent = error.status === 401
      ? "Wrong user name or password. Check them and try again."
      : error.message;
    $("login-password").select();
  }
});

$("logout").addEventListener("click", async () => {
  try { await api("/api/logout", { method: "POST" }); } catch { /* logged out anyway */ }
  setCsrf("");
  showLogin("You are logged out.");
});

whenUnauthorized(() => {
  if (page.user) showLogin("Your login has expired: log in again.");
});

// --- the case history ------------------------------------------------------------------------
async function loadCases() {
  try {
    page.cases = await api("/api/cases");
    $("history-error").textContent = "";
  } catch (error) {
    $("history-error").textContent = `The cases could not be loaded: ${error.message}`;
    return;
  }
  renderCases();
  for (const c of page.cases) for (const job of c.jobs) if (!FINAL.has(job.state)) follow(job);
}

function latestJob(c) {
  return [...c.jobs].sort((a, b) => b.created.localeCompare(a.created) || b.id - a.id)[0];
}

function renderCases() {
  const list = $("cases");
  list.replaceChildren();
  if (!page.cases.length) {
    list.append(el("li", { class: "hint", text: "No cases yet: upload a CT above." }));
  }
  for (const c of page.cases) {
    const job = latestJob(c);
    const results = [...c.results].sort((a, b) => b.created.localeCompare(a.created));
    list.append(el("li", { class: "case", "data-case": c.id },
      el("div", { class: "case-head" },
        el("strong", { text: c.description || c.filename, title: c.filename }),
        job ? el("span", { class: `badge ${job.state}`, "data-job-state": job.id, text: job.state })
            : el("span", { class: "badge", text: "not contoured" })),
      el("div", { class: "meta", text: [c.description ? c.filename : null, when(c.created),
        c.reference ? `reference: ${c.reference}` : null].filter(Boolean).join(" · ") }),
      job ? jobBlock(job) : null,
      results.length ? el("ul", { class: "results", "aria-label": "Results" },
        ...results.map((r) => el("li", {},
          el("button", {
            type: "button", class: "link", "data-result": r.id,
            "aria-current": page.panel?.resultId === r.id ? "true" : null,
            onclick: () => openResult(r.id),
          }, `${r.model_name} ${r.model_version}`),
          el("span", { class: "meta", text: ` ${when(r.created)}` })))) : null,
      el("button", { type: "button", class: "small", onclick: () => contourAgain(c.id) },
        "Contour again")));
  }
}

/** The latest job of a case: its progress while it runs, its message when it failed. */
function jobBlock(job) {
  const block = el("div", { class: "job", "data-job": job.id });
  fillJob(block, job);
  return block;
}

function fillJob(block, job) {
  const running = !FINAL.has(job.state);
  const stage = job.state === "queued" ? "waiting for a worker" : job.stage || job.state;
  block.replaceChildren(...[
    running ? el("progress", { max: 1, value: job.fraction, "aria-label": `Job ${job.id} progress` })
      : null,
    running ? el("span", { class: "job-stage", text: `${stage} · ${Math.round(job.fraction * 100)} %` })
      : null,
    running && !job.cancel_requested
      ? el("button", { type: "button", class: "small", onclick: () => cancel(job.id) }, "Cancel")
      : null,
    running && job.cancel_requested ? el("span", { class: "meta", text: "cancelling…" }) : null,
    job.state === "failed" ? el("p", { class: "error", text: `Failed: ${job.message}` }) : null,
    job.state === "cancelled" ? el("p", { class: "meta", text: "Cancelled." }) : null,
  ].filter(Boolean));
}

/** Show a job's new state in the list. */
function showJob(job) {
  const block = document.querySelector(`[data-job="${job.id}"]`);
  if (block) fillJob(block, job);
  const badge = document.querySelector(`[data-job-state="${job.id}"]`);
  if (badge) { badge.textContent = job.state; badge.className = `badge ${job.state}`; }
}

/** A job ended: reload the list; the job of the case just uploaded opens its result. */
async function ended(job) {
  showJob(job);
  await loadCases();
  if (page.follow !== job.case_id) return;
  page.follow = null;
  if (job.state === "done" && job.result_id) {
    $("upload-status").textContent = `Case ${job.case_id} is contoured: its result is open.`;
    openResult(job.result_id);
  } else if (job.state === "failed") {
    $("upload-status").textContent = "";
    $("upload-error").textContent = `Case ${job.case_id} could not be contoured: ${job.message}`;
  } else {
    $("upload-status").textContent = `The contouring of case ${job.case_id} was cancelled.`;
  }
}

/** Follow a running job until its end: its server-sent events, or, beyond MAX_STREAMS jobs
 *  (a browser opens 6 connections to a server; the viewer needs the others), polling. */
function follow(job) {
  if (page.streams.has(job.id) || page.polled.has(job.id)) return;
  if (page.streams.size >= MAX_STREAMS) {
    page.polled.add(job.id);
    poll();
    return;
  }
  const source = new EventSource(`/api/jobs/${job.id}/events`);
  page.streams.set(job.id, source);
  source.addEventListener("progress", (event) => showJob(JSON.parse(event.data)));
  source.addEventListener("end", (event) => {
    source.close();
    page.streams.delete(job.id);
    ended(JSON.parse(event.data));
  });
  source.addEventListener("error", () => {
    if (source.readyState === EventSource.CLOSED) { // refused (e.g. logged out): stop following
      page.streams.delete(job.id);
    }
  });
}

function poll() {
  if (page.pollTimer || !page.polled.size) return;
  page.pollTimer = setTimeout(async () => {
    for (const id of [...page.polled]) {
      try {
        const job = await api(`/api/jobs/${id}`);
        if (FINAL.has(job.state)) { page.polled.delete(id); ended(job); } else showJob(job);
      } catch {
        page.polled.delete(id);
      }
    }
    page.pollTimer = null;
    poll();
  }, 2000);
}

async function cancel(jobId) {
  try {
    const job = await api(`/api/jobs/${jobId}/cancel`, { method: "POST" });
    const block = document.querySelector(`[data-job="${jobId}"]`);
    if (block) fillJob(block, job);
  } catch (error) {
    $("history-error").textContent = `The job could not be cancelled: ${error.message}`;
  }
}

async function contourAgain(caseId) {
  try {
    await api(`/api/cases/${caseId}/jobs`, { method: "POST", json: {} });
    page.follow = caseId;
    await loadCases();
  } catch (error) {
    $("history-error").textContent = `The case could not be queued: ${error.message}`;
  }
}

$("refresh").addEventListener("click", loadCases);

// --- uploading -------------------------------------------------------------------------------
function choose(files) {
  page.chosen = files.filter((f) => !f.name.startsWith("."));
  const n = page.chosen.length;
  const bytes = page.chosen.reduce((sum, f) => sum + f.size, 0);
  const size = bytes > 2 ** 20 ? `${(bytes / 2 ** 20).toFixed(1)} MB` : `${Math.ceil(bytes / 1024)} kB`;
  $("chosen").textContent = n === 0 ? "No CT chosen."
    : n === 1 ? `Chosen: ${page.chosen[0].name} (${size})` : `Chosen: ${n} files (${size})`;
  $("upload-error").textContent = "";
}

$("pick-file").addEventListener("change", (e) => choose([...e.target.files]));
$("pick-folder").addEventListener("change", (e) => choose([...e.target.files]));

/** The files of a drop, folders walked (a DICOM series dropped as its folder). */
async function dropped(transfer) {
  const entries = [...transfer.items].map((i) => i.webkitGetAsEntry?.()).filter(Boolean);
  if (!entries.some((e) => e.isDirectory)) return [...transfer.files];
  const files = [];
  const walk = async (entry) => {
    if (entry.isFile) {
      files.push(await new Promise((resolve, reject) => entry.file(resolve, reject)));
      return;
    }
    const reader = entry.createReader();
    for (;;) {
      const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
      if (!batch.length) break;
      for (const child of batch) await walk(child);
    }
  };
  for (const entry of entries) await walk(entry);
  return files;
}

const zone = $("drop-zone");
for (const type of ["dragenter", "dragover"]) {
  zone.addEventListener(type, (e) => { e.preventDefault(); zone.classList.add("over"); });
}
zone.addEventListener("dragleave", () => zone.classList.remove("over"));
zone.addEventListener("drop", async (e) => {
  e.preventDefault();
  zone.classList.remove("over");
  try {
    choose(await dropped(e.dataTransfer));
  } catch {
    $("upload-error").textContent = "The dropped files could not be read.";
  }
});

$("upload-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  if (!page.chosen.length) {
    $("upload-error").textContent = "Choose a CT first: a file, or a folder of DICOM files.";
    return;
  }
  const form = new FormData();
  for (const file of page.chosen) form.append("files", file, file.webkitRelativePath || file.name);
  form.append("description", $("upload-description").value.trim());
  form.append("contour", $("upload-contour").checked ? "true" : "false");
  const reference = $("upload-reference").files[0];
  if (reference) form.append("reference", reference, reference.name);

  const bar = $("upload-progress");
  const button = $("upload-button");
  bar.hidden = false;
  bar.value = 0;
  button.disabled = true;
  $("upload-error").textContent = "";
  $("upload-status").textContent = "Uploading…";
  try {
    const { status, body } = await upload("/api/cases", form, (fraction) => {
      bar.value = fraction;
      $("upload-status").textContent = fraction < 1 ? `Uploading… ${Math.round(fraction * 100)} %`
        : "Uploaded; the server is checking the CT…";
    });
    $("upload-status").textContent = status === 201
      ? `Case ${body.id} added.${$("upload-contour").checked ? " Contouring is queued." : ""}`
      : `This CT had been uploaded before: case ${body.id}.`;
    page.follow = body.id;
    $("upload-form").reset();
    choose([]);
    await loadCases();
  } catch (error) {
    $("upload-status").textContent = "";
    $("upload-error").textContent = error instanceof ApiError
      ? `The upload was refused: ${error.message}` : String(error);
  } finally {
    bar.hidden = true;
    button.disabled = false;
  }
});

// --- opening a result ------------------------------------------------------------------------
async function openResult(resultId) {
  page.panel ??= new ResultPanel();
  history.replaceState(null, "", `#result-${resultId}`);
  for (const b of document.querySelectorAll("[data-result]")) {
    if (Number(b.dataset.result) === resultId) b.setAttribute("aria-current", "true");
    else b.removeAttribute("aria-current");
  }
  await page.panel.open(resultId);
}

function openFromAddress() {
  const match = /^#result-(\d+)$/.exec(location.hash);
  if (match) openResult(Number(match[1]));
}

// --- start -----------------------------------------------------------------------------------
api("/api/me").then((me) => showWorkspace(me.name), () => showLogin());
