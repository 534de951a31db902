// Behaviour every page shares, as a file: the Content-Security-Policy allows no inline scripts or
// event handler attributes.
document.addEventListener("change", (event) => {
  if (event.target.matches("select[data-submit-on-change]")) { event.target.form.submit(); }
});
