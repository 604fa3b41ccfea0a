// The /stats page's charts, drawn with the vendored uPlot (vendor/uplot/) from the figures the page carries in
// #stats-data's data-stats (the JSON of GET /api/v1/stats): a file of this receiver, as the Content-Security-Policy
// allows no inline script, and no request of its own, so the page's sign-in cookie is all it needs.
"use strict";

(function () {
  var holder = document.getElementById("stats-data");
  if (!holder || typeof uPlot === "undefined") {
    return; // a page without figures (a bad filter), or the library did not load: the tables still say it all
  }
  var stats = JSON.parse(holder.dataset.stats);
  var DAY = 86400;

  function width(element) {
    return Math.max(element.clientWidth, 300);
  }

  function bars(element, labels, series) {
    // Categories on x: uPlot draws numbers, so each label sits at its index
    if (!labels.length) {
      element.textContent = "Nothing in this window.";
      element.className += " muted";
      return;
    }
    var data = [labels.map(function (_, index) { return index; })]
      .concat(series.map(function (s) { return s.values; }));
    new uPlot({
      width: width(element), height: 240,
      scales: { x: { time: false, range: [-0.5, labels.length - 0.5] } },
      axes: [
        { splits: function () { return data[0]; }, values: function (u, splits) {
            return splits.map(function (index) { return labels[index] || ""; });
          }, rotate: labels.length > 6 ? -40 : 0, size: labels.length > 6 ? 80 : 40 },
        {}
      ],
      series: [{}].concat(series.map(function (s, number) {
        // Two series side by side: the first left of its category, the second right of it
        var align = series.length === 1 ? 0 : (number === 0 ? -1 : 1);
        return { label: s.label, stroke: s.color, fill: s.color, width: 1,
                 paths: uPlot.paths.bars({ size: [series.length === 1 ? 0.6 : 0.35, 60], align: align }) };
      }))
    }, data, element);
  }

  function daily(element) {
    // Every day of the window, zero where no episode started
    var counts = {};
    stats.daily.forEach(function (day) { counts[day.day] = day.episodes; });
    var first = Math.floor(Date.parse(stats.window.since.slice(0, 19) + "Z") / 1000 / DAY) * DAY;
    var last = Date.parse(stats.window.until.slice(0, 19) + "Z") / 1000;
    var days = [], episodes = [];
    for (var at = first; at < last; at += DAY) {
      days.push(at);
      episodes.push(counts[new Date(at * 1000).toISOString().slice(0, 10)] || 0);
    }
    new uPlot({
      width: width(element), height: 240,
      series: [{}, { label: "episodes", stroke: "#d00000", fill: "rgba(208, 0, 0, 0.3)",
                     paths: uPlot.paths.bars({ size: [0.8, 40] }) }]
    }, [days, episodes], element);
  }

  function top(list, key) {
    return { labels: list.map(function (item) { return item[key]; }),
             episodes: list.map(function (item) { return item.episodes; }) };
  }

  daily(document.getElementById("chart-daily"));
  var alerts = top(stats.noisiest.alerts, "alertname");
  bars(document.getElementById("chart-alerts"), alerts.labels,
       [{ label: "episodes", color: "#c77f00", values: alerts.episodes }]);
  var machines = top(stats.noisiest.machines, "machine_id");
  bars(document.getElementById("chart-machines"), machines.labels,
       [{ label: "episodes", color: "#2f80ed", values: machines.episodes }]);
  var channels = stats.channels.filter(function (c) { return c.time_to_delivery_seconds.count > 0; });
  bars(document.getElementById("chart-channels"), channels.map(function (c) { return c.channel; }), [
    { label: "p50", color: "#2eb67d", values: channels.map(function (c) { return c.time_to_delivery_seconds.p50; }) },
    { label: "p95", color: "#6b46c1", values: channels.map(function (c) { return c.time_to_delivery_seconds.p95; }) }
  ]);
})();
