/* BillingWatch dashboard: copy buttons, select-all, charts (Chart.js config comes from the server as JSON). */
(function () {
  "use strict";

  function copyText(button) {
    var source = document.querySelector(button.getAttribute("data-copy"));
    if (!source) return;
    var text = source.textContent.trim();
    var done = function () { var old = button.textContent; button.textContent = "Copied ✓"; setTimeout(function () { button.textContent = old; }, 1500); };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () { selectText(source); });
    } else { selectText(source); document.execCommand && document.execCommand("copy"); done(); }
  }

  function selectText(node) {
    var range = document.createRange(); range.selectNodeContents(node);
    var sel = window.getSelection(); sel.removeAllRanges(); sel.addRange(range);
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest("[data-copy]");
    if (button) { event.preventDefault(); copyText(button); }
  });

  document.addEventListener("change", function (event) {
    var all = event.target.closest("[data-select-all]");
    if (!all) return;
    var name = all.getAttribute("data-select-all");
    all.form.querySelectorAll('input[type=checkbox][name="' + name + '"]').forEach(function (box) { box.checked = all.checked; });
  });

  function drawCharts(root) {
    if (!window.Chart) return;
    (root || document).querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      if (canvas.dataset.drawn) return;
      var data = document.getElementById("chart-" + canvas.getAttribute("data-chart"));
      if (!data) return;
      var config = JSON.parse(data.textContent);
      var extra = config.options || {};
      var scales = extra.scales || {};
      config.options = {
        responsive: true, maintainAspectRatio: false, animation: false,
        interaction: { mode: "index", intersect: false },
        plugins: { legend: { labels: { boxWidth: 12, usePointStyle: true } } },
        scales: {
          x: Object.assign({ grid: { display: false }, ticks: { maxRotation: 0, autoSkipPadding: 12 } }, scales.x || {}),
          y: Object.assign({ beginAtZero: true }, scales.y || {})
        }
      };
      new window.Chart(canvas, config);
      canvas.dataset.drawn = "1";
    });
  }

  window.addEventListener("load", function () { drawCharts(document); });
  document.addEventListener("htmx:afterSettle", function (event) { drawCharts(event.target); });
})();
