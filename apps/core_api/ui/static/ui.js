// chad-memory dashboard: the little that needs script. Loaded from our origin (CSP: 'self').
(function () {
  "use strict";

  // A live run's body is re-fetched every 2 s; keep the steps a reader opened open.
  var opened = [];
  document.addEventListener("htmx:beforeSwap", function (e) {
    if (!e.detail.target || e.detail.target.id !== "run-body") return;
    opened = Array.prototype.map.call(
      e.detail.target.querySelectorAll("details[open][id]"), function (d) { return d.id; });
  });
  document.addEventListener("htmx:afterSettle", function () {
    opened.forEach(function (id) {
      var d = document.getElementById(id);
      if (d) d.open = true;
    });
  });

  // Open the step a link points at (#step-...), e.g. from the LLM calls table.
  function openHash() {
    if (location.hash.indexOf("#step-") !== 0) return;
    var d = document.getElementById(location.hash.slice(1));
    if (d) { d.open = true; d.scrollIntoView({ block: "center" }); }
  }
  window.addEventListener("hashchange", openHash);
  document.addEventListener("DOMContentLoaded", openHash);

  // Usage charts: uPlot over the JSON the server put in <script type="application/json">.
  var PALETTE = ["#2b59c3", "#1f9d55", "#d63b3b", "#c98a0b", "#7a4fd1", "#0f8b8d", "#e2589b", "#667085"];
  function charts() {
    var data = document.getElementById("usage-data");
    if (!data || typeof uPlot === "undefined") return;
    var u = JSON.parse(data.textContent);
    document.querySelectorAll("[data-chart]").forEach(function (el) {
      var kind = el.getAttribute("data-chart");
      var series = [{}], cols = [u.x];
      if (kind === "latency") {
        series.push({ label: "p50", stroke: PALETTE[0], width: 2, points: { show: true } });
        series.push({ label: "p95", stroke: PALETTE[2], width: 2, points: { show: true } });
        cols.push(u.p50, u.p95);
      } else {
        u.models.forEach(function (m, i) {
          series.push({ label: m, stroke: PALETTE[i % PALETTE.length], width: 2,
                        points: { show: true }, spanGaps: true });
          cols.push(u[kind][m]);
        });
      }
      var width = Math.max(320, el.clientWidth);
      var plot = new uPlot({ width: width, height: 220, series: series,
                             axes: [{}, { size: 70 }], legend: { live: false } }, cols, el);
      el.setAttribute("data-ready", "1");
      window.addEventListener("resize", function () {
        plot.setSize({ width: Math.max(320, el.clientWidth), height: 220 });
      });
    });
  }
  document.addEventListener("DOMContentLoaded", charts);
})();
