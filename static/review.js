// The review page: choose an entity (list, text or page image) and act on it with the inspector's forms
// or the keyboard; choose words (click / shift-click in the text, or draw a box on the page image) and add
// an entity. Every change goes through htmx, which swaps the whole review panel with the server's answer.
(function () {
  "use strict";

  let selectedId = null; // the chosen entity's id, kept across swaps
  let anchor = null; // first word of a text selection
  let requested; // the chosen entity when the review panel's last request left (undefined: none out)
  const ZOOM_KEY = "docloop-review-zoom";

  function $(selector, root) { return (root || document).querySelector(selector); }
  function $all(selector, root) { return Array.from((root || document).querySelectorAll(selector)); }
  function csrf() {
    try { return JSON.parse(document.body.getAttribute("hx-headers"))["x-csrftoken"]; } catch (e) { return ""; }
  }
  // Entities in reading order (the list groups them by type; j / k walk the text).
  function rows() {
    return $all("#entity-list li.e").sort(function (a, b) {
      return Number(a.dataset.start) - Number(b.dataset.start) || Number(a.dataset.annotation) - Number(b.dataset.annotation);
    });
  }
  function row(id) { return $(`#entity-list li.e[data-annotation="${id}"]`); }
  function typing(event) {
    const t = event.target;
    return t && (t.isContentEditable || ["INPUT", "SELECT", "TEXTAREA"].includes(t.tagName));
  }

  // Choosing an entity -----------------------------------------------------------------------------------
  function select(id, scroll) {
    const r = row(id);
    $all(".chosen").forEach(function (e) { e.classList.remove("chosen"); });
    if (!r) { selectedId = null; return; }
    selectedId = String(id);
    $all(`[data-annotation="${id}"]`).forEach(function (e) { e.classList.add("chosen"); });
    fillInspector(r);
    if (scroll) {
      const inspector = $("#inspector");
      const pinned = inspector && getComputedStyle(inspector).position === "sticky" ? inspector.offsetHeight : 0;
      reveal(r, r.closest(".side"), pinned);
      reveal(document.getElementById("entity-" + id), $("#page-text"), 0);
    }
  }

  // Bring `element` into view by scrolling its own pane only, never the window: the side panel and its
  // pinned inspector stay where they are. `inset` is what a sticky header covers at the pane's top. A pane
  // that does not scroll (the one-column layout of a narrow window) lets the browser scroll the window.
  function reveal(element, pane, inset) {
    if (!element) { return; }
    if (!pane || pane.scrollHeight <= pane.clientHeight + 1) { element.scrollIntoView({ block: "nearest" }); return; }
    const box = element.getBoundingClientRect(), view = pane.getBoundingClientRect(), margin = 8;
    const top = Math.max(view.top, 0) + inset + margin, bottom = Math.min(view.bottom, window.innerHeight) - margin;
    if (box.top < top) { pane.scrollTop -= top - box.top; }
    else if (box.bottom > bottom) { pane.scrollTop += Math.min(box.bottom - bottom, box.top - top); }
  }

  function fillInspector(r) {
    const inspector = $("#inspector");
    if (!inspector) { return; }
    const id = r.dataset.annotation;
    $all("form[data-act]", inspector).forEach(function (form) {
      form.setAttribute("action", form.getAttribute("action").replace(/\/annotations\/\d+\//, `/annotations/${id}/`));
      $all("input.rev", form).forEach(function (input) { input.value = r.dataset.rev; });
    });
    const group = r.closest(".group");
    const badge = group && $(".badge", group);
    const label = $("#inspector-label");
    if (badge && label) { label.textContent = badge.textContent; label.style.cssText = badge.style.cssText; }
    const text = $("#inspector-text");
    if (text) { text.textContent = $(".text", r).textContent; }
    const state = $("#inspector-state");
    if (state) { state.textContent = $(".state", r).textContent; }
    const relabel = $("#inspector-relabel-label");
    if (relabel) { relabel.value = r.dataset.label; }
    const start = $("#inspector-start"), end = $("#inspector-end");
    if (start && end) { start.value = r.dataset.start; end.value = r.dataset.end; }
    const history = $("#inspector-history");
    if (history) { history.href = history.href.replace(/entity=\d+/, "entity=" + id); }
  }

  function move(step) {
    const all = rows();
    if (!all.length) { return; }
    const index = all.findIndex(function (r) { return r.dataset.annotation === selectedId; });
    const next = index < 0 ? 0 : Math.min(Math.max(index + step, 0), all.length - 1);
    select(all[next].dataset.annotation, true);
  }

  // Acting on the chosen entity -----------------------------------------------------------------------------
  function submit(form, extra) {
    const values = Object.fromEntries(new FormData(form));
    Object.assign(values, extra || {});
    if (selectedId) { values.entity = selectedId; }
    htmx.ajax("POST", form.getAttribute("action"), {
      target: "#review-panel", swap: "outerHTML", values: values, headers: { "X-CSRFToken": csrf() },
    });
  }

  function act(name, extra) {
    const form = $(`#inspector form[data-act="${name}"]`);
    if (!form || !selectedId) { return; }
    submit(form, extra);
  }

  document.addEventListener("submit", function (event) {
    const form = event.target.closest("#inspector form[data-act]");
    if (!form || typeof htmx === "undefined") { return; }
    event.preventDefault();
    submit(form);
  });

  function resize(dStart, dEnd) {
    const r = selectedId && row(selectedId);
    if (!r) { return; }
    const start = Number(r.dataset.start) + dStart, end = Number(r.dataset.end) + dEnd;
    if (start < 0 || end <= start) { return; }
    act("resize", { start: start, end: end });
  }

  // Choosing words ----------------------------------------------------------------------------------------
  function showSelection(start, end, text) {
    $("#add-start").value = start;
    $("#add-end").value = end;
    $all("#page-text .w").forEach(function (w) {
      const i = Number(w.dataset.i);
      w.classList.toggle("selected", i >= start && i < end);
    });
    const shown = text || $all("#page-text .w.selected").map(function (w) { return w.textContent; }).join(" ");
    const box = $("#selection");
    if (box) { box.textContent = shown || box.dataset.empty; }
  }

  function clearSelection() {
    anchor = null;
    const start = $("#add-start");
    if (start) { start.value = ""; $("#add-end").value = ""; }
    $all("#page-text .w.selected").forEach(function (w) { w.classList.remove("selected"); });
    const boxes = $("#selection-boxes");
    if (boxes) { boxes.replaceChildren(); }
    const box = $("#selection");
    if (box) { box.textContent = box.dataset.empty; }
  }

  function hasWordSelection() { const s = $("#add-start"); return s && s.value !== ""; }

  document.addEventListener("click", function (event) {
    const quick = event.target.closest("#entity-list button[data-act]");
    if (quick) {
      select(quick.closest("li.e").dataset.annotation, false);
      act(quick.dataset.act);
      return;
    }
    const listed = event.target.closest("#entity-list li.e");
    if (listed) {
      event.preventDefault();
      select(listed.dataset.annotation, false);
      return;
    }
    const word = event.target.closest("#page-text .w");
    const mark = event.target.closest("#page-text mark.entity");
    if (mark && !(event.shiftKey && anchor !== null)) {
      // A click on an entity's word chooses the entity; it also anchors a word selection that a
      // shift-click can extend, without starting one (so a digit then relabels the entity).
      select(mark.dataset.annotation, true);
      clearSelection();
      if (word) { anchor = Number(word.dataset.i); }
      return;
    }
    if (word) {
      const i = Number(word.dataset.i);
      let start = i, end = i + 1;
      if (event.shiftKey && anchor !== null) {
        start = Math.min(anchor, i);
        end = Math.max(anchor, i) + 1;
      } else {
        anchor = i;
      }
      showSelection(start, end);
      return;
    }
    const zoomButton = event.target.closest("[data-zoom]");
    if (zoomButton) { zoomBy(Number(zoomButton.dataset.zoom)); }
  });

  // Drawing a box on the page image: the server says which words it covers ------------------------------------
  let drag = null;

  function svgPoint(svg, event) {
    const point = svg.createSVGPoint();
    point.x = event.clientX;
    point.y = event.clientY;
    return point.matrixTransform(svg.getScreenCTM().inverse());
  }

  document.addEventListener("pointerdown", function (event) {
    const svg = event.target.closest("#page-overlay");
    if (!svg || event.button !== 0) { return; }
    event.preventDefault();
    drag = { svg: svg, from: svgPoint(svg, event), target: event.target };
    svg.setPointerCapture(event.pointerId);
  });

  document.addEventListener("pointermove", function (event) {
    if (!drag) { return; }
    const to = svgPoint(drag.svg, event);
    const rect = $("#drag-box");
    rect.setAttribute("x", Math.min(drag.from.x, to.x));
    rect.setAttribute("y", Math.min(drag.from.y, to.y));
    rect.setAttribute("width", Math.abs(to.x - drag.from.x));
    rect.setAttribute("height", Math.abs(to.y - drag.from.y));
  });

  document.addEventListener("pointerup", function (event) {
    if (!drag) { return; }
    const from = drag.from, to = svgPoint(drag.svg, event), target = drag.target;
    drag = null;
    const rect = $("#drag-box");
    rect.setAttribute("width", 0);
    rect.setAttribute("height", 0);
    const tiny = Math.abs(to.x - from.x) < 2 && Math.abs(to.y - from.y) < 2;
    const box = target.closest && target.closest("g.box");
    if (tiny && box) { select(box.dataset.annotation, true); return; }
    const url = $("#review-panel").dataset.wordsUrl;
    const query = new URLSearchParams({ x0: from.x, y0: from.y, x1: to.x, y1: to.y });
    fetch(`${url}?${query}`, { headers: { Accept: "application/json" }, credentials: "same-origin" })
      .then(function (response) { return response.json(); })
      .then(function (found) {
        clearSelection();
        if (found.start === null || found.start === undefined) { return; }
        showSelection(found.start, found.end, found.text);
        const boxes = $("#selection-boxes");
        found.words.forEach(function (w) {
          const r = document.createElementNS("http://www.w3.org/2000/svg", "rect");
          r.setAttribute("x", w.box[0]);
          r.setAttribute("y", w.box[1]);
          r.setAttribute("width", w.box[2] - w.box[0]);
          r.setAttribute("height", w.box[3] - w.box[1]);
          boxes.appendChild(r);
        });
      });
  });

  // Zoom -------------------------------------------------------------------------------------------------
  function applyZoom() {
    const canvas = $("#page-canvas");
    if (canvas) { canvas.style.width = (Number(sessionStorage.getItem(ZOOM_KEY) || 1) * 100) + "%"; }
  }

  function zoomBy(step) {
    let zoom = Number(sessionStorage.getItem(ZOOM_KEY) || 1);
    zoom = step === 0 ? 1 : Math.min(4, Math.max(0.5, zoom * (step > 0 ? 1.25 : 0.8)));
    sessionStorage.setItem(ZOOM_KEY, String(zoom));
    applyZoom();
  }

  // Undo: the reviewer's own last change (the server finds it; a later change by someone else is a conflict)
  function undo() {
    const form = $("#undo-form");
    if (!form) { return; }
    if (typeof htmx === "undefined") { form.requestSubmit(); return; }
    // Through htmx.ajax, as the other keys act: a form swapped in a moment ago may not be processed by htmx
    // yet, and requestSubmit would then post it the no-JavaScript way (a full page).
    htmx.ajax("POST", form.getAttribute("action"), {
      target: "#review-panel", swap: "outerHTML", values: Object.fromEntries(new FormData(form)),
      headers: { "X-CSRFToken": csrf() },
    });
  }

  // Keyboard ----------------------------------------------------------------------------------------------
  document.addEventListener("keydown", function (event) {
    if (typing(event) || !$("#review-panel")) { return; }
    if ((event.ctrlKey || event.metaKey) && !event.altKey && !event.shiftKey && event.key.toLowerCase() === "z") {
      event.preventDefault();
      undo();
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    const key = event.key;
    let handled = true;
    if (key === "j" || key === "ArrowDown") { move(1); }
    else if (key === "k" || key === "ArrowUp") { move(-1); }
    else if (key === "a") { act("accept"); }
    else if (key === "r") { act("reject"); }
    else if (key === "Delete") { act("delete"); }
    else if (key === "z") { undo(); }
    else if (key === "[") { resize(-1, 0); }
    else if (key === "]") { resize(0, 1); }
    else if (key === "{") { resize(1, 0); }
    else if (key === "}") { resize(0, -1); }
    else if (key === "n") { const next = $("#next-document"); if (next) { window.location.assign(next.href); } }
    else if (key === "+" || key === "=") { zoomBy(1); }
    else if (key === "-") { zoomBy(-1); }
    else if (key === "0") { zoomBy(0); }
    else if (key === "Escape") { clearSelection(); }
    else if (/^[1-9]$/.test(key)) {
      const option = $(`#add-label option[data-shortcut="${key}"]`);
      if (!option) { return; }
      if (hasWordSelection()) {
        $("#add-label").value = option.value;
        $("#add-entity").requestSubmit();
      } else {
        act("relabel", { label: option.value });
      }
    } else { handled = false; }
    if (handled) { event.preventDefault(); }
  });

  // After every swap: keep the chosen entity and the zoom ------------------------------------------------------
  function restore() {
    const panel = $("#review-panel");
    if (!panel) { return; }
    applyZoom();
    anchor = null;
    // The server names the entity to choose (the one acted on, added or in conflict), unless the reviewer
    // moved on (j, k, a click) while the request was out: a fast `a` then `j` must not bounce back.
    const moved = requested !== undefined && selectedId !== requested && selectedId && row(selectedId);
    requested = undefined;
    const wanted = moved ? selectedId : panel.dataset.selected || selectedId;
    if (wanted && row(wanted)) { select(wanted, false); }
    else if (rows().length) { select(rows()[0].dataset.annotation, false); }
    else { selectedId = null; }
  }

  // An action answers with the whole panel: its panes keep their scroll when it shows the same part of the same
  // page (moving to another page or part starts at the top).
  const PANES = ["#page-text", "#page-view", "#review-panel .side"];
  let kept = null;

  function panelSwap(event) {
    return event.detail.target && event.detail.target.id === "review-panel";
  }

  document.addEventListener("htmx:beforeRequest", function (event) {
    if (panelSwap(event)) { requested = selectedId; }
  });

  document.addEventListener("htmx:beforeSwap", function (event) {
    const panel = $("#review-panel");
    if (!panelSwap(event) || !panel) { return; }
    kept = {
      where: panel.dataset.page + "/" + panel.dataset.piece,
      scrolls: PANES.map(function (selector) { const pane = $(selector); return pane && [pane.scrollTop, pane.scrollLeft]; }),
    };
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    const panel = $("#review-panel");
    if (!panelSwap(event) || !panel || !kept) { return; }
    if (kept.where === panel.dataset.page + "/" + panel.dataset.piece) {
      applyZoom(); // the image pane's width first, so its scroll lands where it was
      PANES.forEach(function (selector, i) {
        const pane = $(selector);
        if (pane && kept.scrolls[i]) { pane.scrollTop = kept.scrolls[i][0]; pane.scrollLeft = kept.scrolls[i][1]; }
      });
    }
    kept = null;
  });

  document.addEventListener("htmx:afterSettle", function (event) {
    if (panelSwap(event)) { restore(); }
  });
  document.addEventListener("DOMContentLoaded", restore);
})();
