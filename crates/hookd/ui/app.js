// hookd dashboard: charts (uPlot), live tail (server-sent events), copy buttons, confirmations and
// keyboard shortcuts. Loaded as an external file: the Content-Security-Policy allows no inline script.
(function () {
  "use strict";

  function css(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";
  }

  var charts = [];

  function drawCharts(root) {
    if (typeof uPlot === "undefined") return;
    (root || document).querySelectorAll(".chart[data-series]").forEach(function (el) {
      if (el.dataset.drawn) return;
      el.dataset.drawn = "1";
      var s = JSON.parse(el.dataset.series);
      var kind = el.dataset.kind;
      var axis = { stroke: css("--muted"), grid: { stroke: css("--grid") }, ticks: { stroke: css("--grid") } };
      var series = [{}];
      var data = [s.t];
      if (kind === "rate") {
        series.push({ label: "per minute", stroke: css("--accent"), width: 2, fill: css("--accent-soft") });
        data.push(s.per_minute);
      } else if (kind === "success") {
        series.push({ label: "success %", stroke: css("--ok"), width: 2, spanGaps: true, points: { show: true, size: 6 } });
        data.push(s.success_pct);
      } else {
        series.push({ label: "p50", stroke: css("--accent"), width: 2, spanGaps: true });
        series.push({ label: "p95", stroke: css("--warn"), width: 2, spanGaps: true });
        series.push({ label: "p99", stroke: css("--bad"), width: 2, spanGaps: true });
        data.push(s.p50, s.p95, s.p99);
      }
      series.forEach(function (one, i) { if (i > 0) one.points = { show: true, size: 5 }; });
      var opts = {
        width: Math.max(el.clientWidth, 200),
        height: 180,
        series: series,
        axes: [axis, axis],
        legend: { show: kind === "latency" },
        scales: kind === "success" ? { y: { range: [0, 100] } } : {},
      };
      charts.push({ el: el, plot: new uPlot(opts, data, el) });
    });
  }

  window.addEventListener("resize", function () {
    charts.forEach(function (c) { c.plot.setSize({ width: Math.max(c.el.clientWidth, 200), height: 180 }); });
  });

  function liveTail() {
    var button = document.getElementById("live-tail");
    if (!button) return;
    var source = null;
    var status = document.getElementById("live-status");
    button.addEventListener("click", function () {
      if (source) {
        source.close();
        source = null;
        button.setAttribute("aria-pressed", "false");
        status.textContent = "";
        return;
      }
      source = new EventSource(button.dataset.stream);
      button.setAttribute("aria-pressed", "true");
      status.textContent = "Live: new deliveries appear at the top.";
      source.addEventListener("rows", function (e) {
        var body = document.getElementById("delivery-rows");
        if (body) body.insertAdjacentHTML("afterbegin", e.data);
      });
    });
  }

  function copyButtons() {
    document.addEventListener("click", function (e) {
      var button = e.target.closest("button.copy");
      if (!button) return;
      navigator.clipboard.writeText(button.dataset.copy).then(function () {
        button.textContent = "Copied";
        setTimeout(function () { button.textContent = "Copy as curl"; }, 1500);
      });
    });
    document.addEventListener("submit", function (e) {
      var form = e.target.closest("form.confirm");
      if (form && !window.confirm(form.dataset.confirm)) e.preventDefault();
    });
  }

  function shortcuts() {
    var pendingG = false;
    var base = document.body.dataset.base || "/ui";
    var go = { o: "", e: "/endpoints", d: "/deliveries", x: "/dead-letters", c: "/events" };
    document.addEventListener("keydown", function (e) {
      var t = e.target;
      if (e.ctrlKey || e.metaKey || e.altKey) return;
      if (t && (t.tagName === "INPUT" || t.tagName === "TEXTAREA" || t.tagName === "SELECT" || t.isContentEditable)) return;
      var help = document.getElementById("help");
      if (e.key === "/") {
        var search = document.getElementById("global-search");
        if (search) { e.preventDefault(); search.focus(); }
      } else if (e.key === "?") {
        if (help && !help.open) { e.preventDefault(); help.showModal(); }
      } else if (pendingG && go[e.key]) {
        window.location.href = base + go[e.key];
      }
      pendingG = e.key === "g";
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    drawCharts();
    liveTail();
    copyButtons();
    shortcuts();
  });
  document.addEventListener("htmx:afterSwap", function (e) { drawCharts(e.target); });
})();
