// memos ui: draws the charts whose data the page carries in <script type="application/json">
// blocks (no inline script: the Content-Security-Policy allows scripts from /static only).
"use strict";
(function () {
  function data(el) {
    return JSON.parse(document.getElementById(el.dataset.source).textContent);
  }
  function width(el) { return Math.max(320, Math.min(900, el.clientWidth || 640)); }
  var draw = {
    usage: function (el, d) {
      var day = 86400;
      var x = d.days.map(function (s) { return Date.parse(s + "T00:00:00Z") / 1000; });
      var bars = uPlot.paths.bars({ size: [0.4, 24] });
      return new uPlot({
        width: width(el), height: 220, title: "retrievals and uses per day (UTC)",
        scales: { x: { time: true, range: function () {
          return [x[0] - day, x[x.length - 1] + day]; } },
                  y: { range: function (u, lo, hi) { return [0, Math.max(1, hi)]; } } },
        series: [{}, { label: "retrievals", stroke: "#3465a4", fill: "rgba(52,101,164,0.5)",
                       paths: bars, points: { show: false } },
                 { label: "uses", stroke: "#cc0000", fill: "rgba(204,0,0,0.5)",
                   paths: bars, points: { show: false } }],
        axes: [{}, { label: "count" }]
      }, [x, d.retrievals, d.uses], el);
    },
    budget: function (el, d) {
      // from the empty store: each of your chunks in plan order, what they would fill
      var x = [0].concat(d.x), held = [0].concat(d.bytes), want = [0].concat(d.wanted);
      var budget = [d.budget_bytes].concat(d.x.map(function () { return d.budget_bytes; }));
      return new uPlot({
        width: width(el), height: 240, title: "KV budget and your memories' chunks",
        scales: { x: { time: false },
                  y: { range: function (u, lo, hi) { return [0, hi * 1.1]; } } },
        series: [{ label: "chunks" },
                 { label: "bytes wanted", stroke: "#888", dash: [2, 3] },
                 { label: "bytes held", stroke: "#3465a4", fill: "rgba(52,101,164,0.15)" },
                 { label: "budget", stroke: "#cc0000", dash: [6, 4], points: { show: false } }],
        axes: [{ label: "chunks in plan order" }, { label: "bytes", size: 80 }]
      }, [x, want, held, budget], el);
    }
  };
  document.querySelectorAll("[data-chart]").forEach(function (el) {
    var f = draw[el.dataset.chart];
    if (f) { f(el, data(el)); el.dataset.drawn = "1"; }
  });
})();
