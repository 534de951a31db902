// Word selection for "Add an entity": click the first word, shift-click the last one.
(function () {
  let anchor = null;
  function words() { return document.querySelectorAll("#page-text .w"); }
  function show(start, end) {
    words().forEach(function (w) {
      const i = Number(w.dataset.i);
      w.classList.toggle("selected", i >= start && i < end);
    });
    const text = Array.from(words()).filter(function (w) { return w.classList.contains("selected"); })
      .map(function (w) { return w.textContent; }).join(" ");
    const box = document.getElementById("selection");
    if (box) { box.textContent = text || box.dataset.empty || box.textContent; }
  }
  document.addEventListener("click", function (event) {
    const word = event.target.closest("#page-text .w");
    if (!word) { return; }
    const i = Number(word.dataset.i);
    let start = i, end = i + 1;
    if (event.shiftKey && anchor !== null) {
      start = Math.min(anchor, i);
      end = Math.max(anchor, i) + 1;
    } else {
      anchor = i;
    }
    document.getElementById("add-start").value = start;
    document.getElementById("add-end").value = end;
    show(start, end);
  });
  document.addEventListener("htmx:afterSwap", function () { anchor = null; });
})();
