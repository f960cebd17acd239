// One result on screen: the viewer and its controls, the organ list, the comparison with the
// reference, the review form and the downloads.

import { api, el, when } from "./api.js";
import { Viewer } from "./viewer.js";

const $ = (id) => document.getElementById(id);

const DOWNLOADS = [
  ["rtstruct", "RTSTRUCT (DICOM)"],
  ["labels", "Label map (NIfTI)"],
  ["seg", "DICOM-SEG"],
  ["overview", "Overview (PNG)"],
  ["report", "Report (JSON)"],
  ["body", "Body outline (NIfTI)"],
  ["comparison", "Comparison (JSON)"],
];

const number = (value, digits) => (value === null || value === undefined ? "–"
  : Number(value).toFixed(digits));
const signed = (value, digits) => (value === null || value === undefined ? "–"
  : `${value > 0 ? "+" : ""}${Number(value).toFixed(digits)}`);
const rgb = ([r, g, b]) => `rgb(${r}, ${g}, ${b})`;

export class ResultPanel {
  constructor() {
    this.resultId = null;
    this.viewer = new Viewer({
      stage: $("stage"), main: $("canvas-main"), ref: $("canvas-ref"),
      onChange: (viewer) => this.sync(viewer),
      onError: (message) => { $("viewer-error").textContent = message; },
    });
    this.wireControls();
    this.wireTabs();
    $("review-form").addEventListener("submit", (e) => { e.preventDefault(); this.saveReview(); });
    $("accept-all").addEventListener("click", () => {
      for (const radio of document.querySelectorAll('#review-rows input[value="accepted"]')) {
        radio.checked = true;
      }
    });
  }

  async open(resultId) {
    this.resultId = resultId;
    $("viewer-empty").hidden = true;
    $("viewer-body").hidden = false;
    $("viewer-error").textContent = "";
    try {
      const result = await api(`/api/results/${resultId}`);
      const [kase, structures, review] = await Promise.all([
        api(`/api/cases/${result.case_id}`),
        api(`/api/results/${resultId}/structures`),
        api(`/api/results/${resultId}/review`),
      ]);
      if (this.resultId !== resultId) return; // another result was chosen meanwhile
      this.result = result;
      this.structures = structures;
      $("viewer-subtitle").textContent = `${kase.description || kase.filename} · `
        + `${result.model_name} ${result.model_version} · ${when(result.created)}`;
      $("compare-group").hidden = !kase.reference;
      if (!kase.reference) $("compare-mode").value = "off";
      this.renderOrgans(result);
      this.renderComparison(result, kase);
      this.renderReview(review);
      this.renderDownloads(result);
      await this.viewer.open({ caseId: result.case_id, resultId, structures,
                               hasReference: Boolean(kase.reference) });
      this.viewer.setCompare($("compare-mode").value);
      this.viewer.setHidden(this.hiddenNames());
      this.renderPresets();
    } catch (error) {
      $("viewer-error").textContent = `This result cannot be shown: ${error.message}`;
    }
  }

  close() {
    this.viewer.stop();
    this.resultId = null;
    $("viewer-body").hidden = true;
    $("viewer-empty").hidden = false;
  }

  // --- the viewer's controls ------------------------------------------------------------------
  wireControls() {
    const viewer = this.viewer;
    for (const button of document.querySelectorAll("[data-view]")) {
      button.addEventListener("click", () => viewer.setView(button.dataset.view));
    }
    const windowChanged = () => {
      const width = Number($("window-width").value);
      const level = Number($("window-level").value);
      if (Number.isFinite(width) && width > 0 && Number.isFinite(level)) viewer.setWindow(width, level);
    };
    $("window-width").addEventListener("change", windowChanged);
    $("window-level").addEventListener("change", windowChanged);
    $("play").addEventListener("click", () => viewer.togglePlay());
    $("play-ms").addEventListener("change", () => viewer.setPlayMs(Number($("play-ms").value)));
    $("opacity").addEventListener("input", () => viewer.setOpacity(Number($("opacity").value)));
    $("compare-mode").addEventListener("change", () => viewer.setCompare($("compare-mode").value));
    $("slice-slider").addEventListener("input", () => viewer.setIndex(Number($("slice-slider").value)));
    $("show-all").addEventListener("click", () => this.setAllOrgans(true));
    $("hide-all").addEventListener("click", () => this.setAllOrgans(false));
    // the viewer's keys also work when nothing has the focus, or one of its buttons has
    document.addEventListener("keydown", (event) => {
      const target = event.target;
      if (!this.viewer.meta || $("viewer-body").hidden || $("stage").contains(target)) return;
      if (target !== document.body && !target.closest?.(".viewer-main")) return;
      if (target.matches("input, select, textarea")) return;
      if (target.matches("button") && (event.key === " " || event.key === "Enter")) return;
      if (event.altKey || event.ctrlKey || event.metaKey) return;
      if (this.viewer.key(event)) event.preventDefault();
    });
  }

  renderPresets() {
    const presets = this.viewer.meta.presets;
    $("presets").replaceChildren(...Object.entries(presets).map(([name, [width, level]]) =>
      el("button", { type: "button", "data-preset": name, "aria-pressed": "false",
                     title: `window ${width}, level ${level}`,
                     onclick: () => this.viewer.setWindow(width, level) }, name)));
    this.sync(this.viewer);
  }

  /** Make the controls say what the viewer shows. */
  sync(viewer) {
    for (const button of document.querySelectorAll("[data-view]")) {
      button.setAttribute("aria-pressed", String(button.dataset.view === viewer.view));
    }
    for (const button of document.querySelectorAll("[data-preset]")) {
      const [width, level] = viewer.meta.presets[button.dataset.preset];
      button.setAttribute("aria-pressed", String(width === viewer.window && level === viewer.level));
    }
    if (document.activeElement !== $("window-width")) $("window-width").value = viewer.window;
    if (document.activeElement !== $("window-level")) $("window-level").value = viewer.level;
    $("play").textContent = viewer.playing ? "Pause" : "Play";
    $("play").setAttribute("aria-pressed", String(viewer.playing));
    const slider = $("slice-slider");
    slider.max = String(Math.max(0, viewer.count - 1));
    slider.value = String(viewer.index);
    let info = `Slice ${viewer.index + 1} / ${viewer.count}`;
    if (viewer.view === "axial" && viewer.meta.z_mm) {
      info += ` · z ${number(viewer.meta.z_mm[viewer.index], 1)} mm`;
    } else {
      info += ` (${viewer.view})`;
    }
    $("slice-info").textContent = info;
    slider.setAttribute("aria-valuetext", info);
    const side = viewer.compare === "side";
    $("pane-ref").hidden = !side;
    $("caption-main").hidden = !side;
    $("stage").classList.toggle("two-up", side);
    $("viewer-body").classList.toggle("wide", side); // two images need the whole width
    $("legend").hidden = viewer.compare !== "overlay";
  }

  // --- organs ---------------------------------------------------------------------------------
  renderOrgans(result) {
    const list = $("organs");
    const organs = this.structures.filter((s) => s.type !== "EXTERNAL").length;
    $("organ-count").textContent = `${organs} organ${organs === 1 ? "" : "s"}`;
    list.replaceChildren(...this.structures.map((s, i) => el("li", { class: s.flag ? "flagged" : "" },
      el("input", { type: "checkbox", id: `organ-${i}`, checked: true, "data-organ": s.name,
                    onchange: () => this.viewer.setHidden(this.hiddenNames()) }),
      el("label", { for: `organ-${i}` },
        el("span", { class: "swatch", style: `background: ${rgb(s.color)}`, "aria-hidden": "true" }),
        el("span", { class: "name", text: s.name })),
      el("span", { class: "volume", text: s.volume_cc === null ? "" : `${number(s.volume_cc, 2)} cm³` }),
      s.flag ? el("span", { class: "flag", text: `⚠ ${s.flag}` }) : null)));
    const warnings = result.warnings || [];
    $("warnings").replaceChildren(...warnings.map((w) => el("li", { text: w })));
  }

  hiddenNames() {
    return [...document.querySelectorAll("#organs input[data-organ]")]
      .filter((box) => !box.checked).map((box) => box.dataset.organ);
  }

  setAllOrgans(shown) {
    for (const box of document.querySelectorAll("#organs input[data-organ]")) box.checked = shown;
    this.viewer.setHidden(this.hiddenNames());
  }

  // --- comparison -----------------------------------------------------------------------------
  renderComparison(result, kase) {
    const table = $("compare-table");
    const comparison = result.comparison;
    const rows = comparison?.organs || [];
    table.hidden = !rows.length;
    let summary;
    if (!kase.reference) summary = "This case has no reference contours to compare with.";
    else if (!comparison) summary = "This result was made before the reference was given: "
      + "contour the case again to score it.";
    else if (comparison.error) summary = `The reference could not be compared: ${comparison.error}`;
    else summary = `Against ${comparison.reference}: mean Dice ${number(comparison.mean_dice, 3)} `
      + `over ${rows.length} organ${rows.length === 1 ? "" : "s"}.`;
    $("compare-summary").textContent = summary;
    table.tBodies[0].replaceChildren(...rows.map((r) => el("tr", { "data-organ": r.organ },
      el("th", { scope: "row", text: r.organ }),
      el("td", { text: number(r.dice, 3), class: r.dice !== null && r.dice < 0.7 ? "low" : "" }),
      el("td", { text: number(r.hd95_mm, 1) }),
      el("td", { text: number(r.surface_dice, 3) }),
      el("td", { text: number(r.volume_truth_cc, 2) }),
      el("td", { text: signed(r.volume_diff_cc, 2) + (Number.isFinite(r.volume_diff_pct)
        ? ` (${signed(r.volume_diff_pct, 0)} %)` : "") }))));
  }

  // --- review ---------------------------------------------------------------------------------
  renderReview(review) {
    const organs = this.structures.filter((s) => s.type !== "EXTERNAL");
    $("review-rows").replaceChildren(...organs.map((s, i) => {
      const saved = review.organs?.[s.name] || {};
      const radio = (value, label) => el("td", {},
        el("input", { type: "radio", name: `review-${i}`, value, "aria-label": `${s.name}: ${label}`,
                      checked: saved.status === value }));
      return el("tr", { "data-organ": s.name },
        el("th", { scope: "row" },
          el("span", { class: "swatch", style: `background: ${rgb(s.color)}`, "aria-hidden": "true" }),
          s.name),
        radio("accepted", "accepted"), radio("needs edit", "needs edit"),
        el("td", {}, el("input", { type: "text", class: "comment", value: saved.comment || "",
                                   "aria-label": `${s.name}: comment` })));
    }));
    $("review-comment").value = review.comment || "";
    this.showVersion(review);
  }

  showVersion(review) {
    $("review-version").textContent = review.version
      ? `Version ${review.version}, saved by ${review.reviewer} on ${when(review.saved)}.`
      : "Not reviewed yet.";
  }

  async saveReview() {
    const organs = {};
    for (const row of $("review-rows").rows) {
      const checked = row.querySelector("input[type=radio]:checked");
      organs[row.dataset.organ] = { status: checked ? checked.value : null,
                                    comment: row.querySelector(".comment").value.trim() };
    }
    $("review-error").textContent = "";
    $("review-save").disabled = true;
    try {
      const saved = await api(`/api/results/${this.resultId}/review`, {
        method: "PUT", json: { organs, comment: $("review-comment").value.trim() } });
      this.showVersion(saved);
    } catch (error) {
      $("review-error").textContent = `The review was not saved: ${error.message}`;
    } finally {
      $("review-save").disabled = false;
    }
  }

  // --- downloads ------------------------------------------------------------------------------
  renderDownloads(result) {
    const links = DOWNLOADS.filter(([kind]) => result.files[kind])
      .map(([kind, label]) => [kind, label, result.files[kind]]);
    links.push(["archive", "All files (zip)", result.archive]);
    $("downloads").replaceChildren(...links.map(([kind, label, url]) => el("li", {},
      el("a", { class: "button", href: url, download: "", "data-download": kind }, label))));
  }

  // --- tabs -----------------------------------------------------------------------------------
  wireTabs() {
    const tabs = [...document.querySelectorAll("[role=tab]")];
    const select = (tab) => {
      for (const t of tabs) {
        const on = t === tab;
        t.setAttribute("aria-selected", String(on));
        t.tabIndex = on ? 0 : -1;
        $(t.getAttribute("aria-controls")).hidden = !on;
      }
    };
    tabs.forEach((tab, i) => {
      tab.addEventListener("click", () => select(tab));
      tab.addEventListener("keydown", (event) => {
        const next = { ArrowRight: i + 1, ArrowLeft: i - 1, Home: 0, End: tabs.length - 1 }[event.key];
        if (next === undefined) return;
        event.preventDefault();
        const target = tabs[(next + tabs.length) % tabs.length];
        select(target);
        target.focus();
      });
    });
  }
}
