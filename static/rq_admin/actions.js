// django-rq's job and worker lists: the "select all" checkbox and the selected rows' highlight. django-rq
// called $(...).actions(), a jQuery plugin Django's admin dropped in 4.1, and Django's actions.js now
// expects a changelist markup (its action counter) that django-rq's pages do not have.
document.addEventListener("DOMContentLoaded", () => {
  const toggle = document.getElementById("action-toggle");
  const boxes = () => Array.from(document.querySelectorAll("tr input.action-select"));
  const mark = (box) => box.closest("tr").classList.toggle("selected", box.checked);
  if (toggle) {
    toggle.addEventListener("change", () => {
      for (const box of boxes()) {
        box.checked = toggle.checked;
        mark(box);
      }
    });
  }
  document.addEventListener("change", (event) => {
    if (!event.target.matches("tr input.action-select")) return;
    mark(event.target);
    if (toggle) toggle.checked = boxes().every((box) => box.checked);
  });
});
