// Several PDFs at once from the queue page: one request per file, each with its own progress bar and its
// own answer (the document's link, or the reason it was refused). Without JavaScript the form posts all
// files together and the server answers with one message per file.
(function () {
  "use strict";
  const form = document.getElementById("queue-upload");
  if (!form) { return; }
  const list = document.getElementById("upload-progress");

  function uploadOne(file) {
    const item = document.createElement("li");
    const name = document.createElement("span");
    name.textContent = file.name;
    const bar = document.createElement("progress");
    bar.max = 100;
    bar.value = 0;
    const note = document.createElement("span");
    note.className = "hint";
    item.append(name, bar, note);
    list.appendChild(item);
    return new Promise(function (resolve) {
      const data = new FormData();
      data.append("file", file);
      data.append("csrfmiddlewaretoken", form.querySelector("[name=csrfmiddlewaretoken]").value);
      const request = new XMLHttpRequest();
      request.open("POST", form.action);
      request.setRequestHeader("Accept", "application/json");
      request.upload.addEventListener("progress", function (event) {
        if (event.lengthComputable) { bar.value = Math.round(100 * event.loaded / event.total); }
      });
      request.addEventListener("load", function () {
        let body = {};
        try { body = JSON.parse(request.responseText); } catch (e) { body = { error: request.statusText }; }
        if (request.status < 300) {
          bar.value = 100;
          item.classList.add("ok");
          const link = document.createElement("a");
          link.href = body.url;
          link.textContent = body.message;
          note.replaceChildren(link);
        } else {
          item.classList.add("error-text");
          note.className = "error-text";
          note.textContent = body.error || request.statusText;
        }
        resolve();
      });
      request.addEventListener("error", function () {
        note.className = "error-text";
        note.textContent = form.dataset.networkError || "network error";
        resolve();
      });
      request.send(data);
    });
  }

  form.addEventListener("submit", function (event) {
    const files = Array.from(document.getElementById("queue-files").files);
    if (!files.length) { return; }
    event.preventDefault();
    list.replaceChildren();
    // One file after another: each shows its progress, and the server ingests them in order.
    const queue = files.slice();
    function next() { const file = queue.shift(); return file ? uploadOne(file).then(next) : Promise.resolve(); }
    next().then(function () {
      form.reset();
      if (window.htmx) { htmx.ajax("GET", window.location.href, { target: "#document-table", swap: "outerHTML" }); }
    });
  });
})();
