// The /dashboard page: fetches GET /api/dashboard/{savings,metrics/realtime,health} every data-refresh seconds
// and fills the page with them, drawing the savings with the vendored uPlot (vendor/uplot/). A file of this
// receiver, as the Content-Security-Policy allows no inline script nor style attribute: classes colour things.
// A figure whose source did not answer shows "–" and the banner says why: never a zero or a stale figure
// that looks current.
"use strict";

(function () {
  var root = document.getElementById("dashboard");
  if (!root) {
    return;
  }
  var API = JSON.parse(root.dataset.api);
  var REFRESH_MS = Math.max(1, parseFloat(root.dataset.refresh) || 15) * 1000;
  // A receiver that neither answers nor refuses must not stall the refreshes behind it
  var FETCH_TIMEOUT_MS = Math.max(10000, REFRESH_MS);
  var DASH = "\u2013";
  var STATES = ["up", "down", "vanished", "retired", "unreachable"];
  var SEVERITIES = ["critical", "warning", "info", "none"];
  var PERIODS = ["today", "month", "year"];
  var COLORS = ["#2f80ed", "#2eb67d", "#c77f00", "#6b46c1", "#d00000", "#808080"]; // .c0 .. .c5 in dashboard.css
  var MONTH_NAMES = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  var SERVICE_NAMES = { prometheus: "Prometheus", alertmanager: "Alertmanager" };
  // The page's own tz and time go to the savings API: /dashboard?time=... shows the savings as of that moment
  var SAVINGS_QUERY = passOn(window.location.search, ["tz", "time"]);

  var sort = { key: "machine_id", direction: 1 };
  var machines = null;   // the last machine list, re-sorted when a header is clicked
  var charts = {};       // chart holder id -> {plot, key, entries}
  var refreshes = 0;

  // --- formatting -------------------------------------------------------------------------------------------
  function isNumber(value) {
    return typeof value === "number" && isFinite(value);
  }

  function grouped(digits) {
    return digits.replace(/\B(?=(\d{3})+$)/g, ",");
  }

  /** US dollars to the cent with thousands separators ("$13,593.66"): the format the browser test expects. */
  function money(value) {
    if (!isNumber(value)) {
      return DASH;
    }
    var fixed = Math.abs(value).toFixed(2).split(".");
    return (value < 0 ? "-$" : "$") + grouped(fixed[0]) + "." + fixed[1];
  }

  function percent(ratio) {
    return isNumber(ratio) ? (ratio * 100).toFixed(0) + " %" : DASH;
  }

  function seconds(value) {
    if (!isNumber(value)) {
      return DASH;
    }
    if (value < 60) {
      return value.toFixed(value < 10 ? 1 : 0) + " s";
    }
    if (value < 3600) {
      return (value / 60).toFixed(1) + " min";
    }
    if (value < 86400) {
      return (value / 3600).toFixed(1) + " h";
    }
    return (value / 86400).toFixed(1) + " d";
  }

  function compactMoney(value) {
    // Axis ticks: short, the legend and the cards give the cents
    if (Math.abs(value) >= 1000) {
      return "$" + (value / 1000).toFixed(value % 1000 === 0 ? 0 : 1) + "k";
    }
    return "$" + (value % 1 === 0 ? value.toFixed(0) : value.toFixed(2));
  }

  function clock(iso) {
    // The browser's local time of an RFC 3339 stamp: the reader's own clock, whatever zone the savings use
    var date = new Date(iso);
    return isNaN(date.getTime()) ? DASH : date.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit",
                                                                          second: "2-digit" });
  }

  function localSpan(period, entry) {
    // Start and end as the API gives them, already in the savings' zone: "2026-12-01 – 2026-12-07 05:32"
    var start = entry.start.slice(0, 10), endDay = entry.end.slice(0, 10), endTime = entry.end.slice(11, 16);
    if (period === "today") {
      return start + ", 00:00 " + DASH + " " + endTime;
    }
    return start + " " + DASH + " " + endDay + " " + endTime;
  }

  // --- DOM helpers ------------------------------------------------------------------------------------------
  function make(tag, className, text) {
    var element = document.createElement(tag);
    if (className) {
      element.className = className;
    }
    if (text !== undefined && text !== null) {
      element.textContent = text;
    }
    return element;
  }

  function clear(element) {
    while (element.firstChild) {
      element.removeChild(element.firstChild);
    }
    return element;
  }

  function messageRow(tbody, columns, text) {
    var row = make("tr", "placeholder");
    var cell = make("td", "muted", text);
    cell.colSpan = columns;
    row.appendChild(cell);
    clear(tbody).appendChild(row);
  }

  function sameSitePath(url) {
    // Links come from the API (url_for): a path on this receiver, never another scheme or host
    return typeof url === "string" && /^\/(?![\/\\])/.test(url);
  }

  function passOn(search, names) {
    var params = new URLSearchParams(search), kept = new URLSearchParams();
    names.forEach(function (name) {
      if (params.has(name)) {
        kept.set(name, params.get(name));
      }
    });
    var query = kept.toString();
    return query ? "?" + query : "";
  }

  // --- fetching ---------------------------------------------------------------------------------------------
  /** One API read: {ok, body} or {ok: false, problems: [{key, text}]}; never rejects. */
  function load(name) {
    var url = API[name] + (name === "savings" ? SAVINGS_QUERY : "");
    var controller = new AbortController();
    var timer = setTimeout(function () { controller.abort(); }, FETCH_TIMEOUT_MS);
    return fetch(url, { credentials: "same-origin", cache: "no-store", headers: { Accept: "application/json" },
                        signal: controller.signal })
      .then(function (response) {
        return response.json().then(function (body) { return { status: response.status, body: body }; },
                                    function () { return { status: response.status, body: null }; });
      })
      .then(function (answer) {
        if (answer.status === 200 && answer.body) {
          return { name: name, ok: true, body: answer.body };
        }
        return { name: name, ok: false, problems: [refusal(url, answer.status, answer.body)] };
      }, function (error) {
        var why = error && error.name === "AbortError" ? "no answer within " + FETCH_TIMEOUT_MS / 1000 + " s"
          : (error && error.message) || String(error);
        return { name: name, ok: false,
                 problems: [{ key: "receiver", text: "The receiver did not answer " + url + ": " + why }] };
      })
      .finally(function () { clearTimeout(timer); });
  }

  function sourceProblem(service, url, error) {
    // "Prometheus at http://… is unreachable (connection failed)": the API's own words for why
    var who = (SERVICE_NAMES[service] || service) + " at " + (url || "(no URL)");
    var why = error || "no reason given";
    var prefix = service + " at " + url + ": ";
    if (why.indexOf(prefix) === 0) {
      why = why.slice(prefix.length); // a 503's error repeats who it is about
    }
    var text = /^unreachable\b/.test(why) ? who + " is " + why
      : /^no answer\b/.test(why) ? who + " is unreachable: " + why
      : who + " failed: " + why;
    return { key: service + " " + url, text: text };
  }

  function refusal(url, status, body) {
    // Why an API answered other than 200, in words: a source it could not read, a parameter, the sign-in
    if (status === 503 && body && body.service) {
      return sourceProblem(body.service, body.url, body.error);
    }
    if (status === 400 && body && body.parameter) {
      return { key: "param " + body.parameter, text: "The API refused the page's parameter " + body.error };
    }
    if (status === 401) {
      return { key: "auth", text: "Signed out: reload the page to sign in again." };
    }
    return { key: "http " + url, text: url + " answered HTTP " + status + ((body && body.error) ? ": " + body.error
                                                                                 : "") };
  }

  // --- savings ----------------------------------------------------------------------------------------------
  /** One savings card from the API's figure for `period`, or "–" everywhere when `entry` is null. */
  function fillCard(period, entry, categories) {
    var card = document.getElementById("card-" + period);
    var total = card.querySelector(".total"), list = clear(card.querySelector(".by-category"));
    var missing = card.querySelector(".hours-missing");
    if (!entry) {
      // Gone: the categories stay named, so the card keeps its shape, with no figure
      total.textContent = DASH;
      total.removeAttribute("data-value");
      card.querySelector(".span").textContent = "\u00a0";
      (card.dataset.categories ? card.dataset.categories.split(",") : []).forEach(function (category, index) {
        list.appendChild(categoryItem(category, index, DASH, null));
      });
      missing.hidden = true;
      card.dataset.state = "missing";
      return;
    }
    total.textContent = money(entry.total);
    total.dataset.value = String(entry.total);
    card.querySelector(".span").textContent = localSpan(period, entry);
    categories.forEach(function (category, index) {
      var amount = entry.by_category[category];
      list.appendChild(categoryItem(category, index, money(amount), amount));
    });
    card.dataset.categories = categories.join(",");
    missing.hidden = !(entry.hours_missing > 0);
    missing.textContent = entry.hours_missing > 0
      ? entry.hours_missing + " hour(s) without a record: the total leaves them out" : "";
    card.dataset.state = "ok";
  }

  function categoryItem(category, index, text, amount) {
    var item = make("li");
    item.dataset.category = category;
    item.appendChild(make("span", "swatch c" + (index % COLORS.length)));
    item.appendChild(make("span", "name", category));
    var value = item.appendChild(make("span", "value", text));
    if (isNumber(amount)) {
      value.dataset.value = String(amount);
    }
    return item;
  }

  function dayLabel(label) {
    return label.slice(5);  // "12-07": the year is in the legend
  }

  function monthLabel(label, index) {
    var month = parseInt(label.slice(5, 7), 10);
    return MONTH_NAMES[month - 1] + (month === 1 || index === 0 ? " " + label.slice(0, 4) : "");
  }

  function chartWidth(holder) {
    return Math.max(holder.clientWidth, 200);
  }

  /** Stacked bars of `entries` by category, in `holder` (its uPlot kept and given new data on each refresh). */
  function drawSavings(holder, entries, categories, unit, shortLabel, minSpacing) {
    var key = categories.join("|") + "#" + entries.map(function (e) { return e.label; }).join("|");
    var state = charts[holder.id];
    // uPlot stacks nothing itself: each bar is drawn from 0 to its running sum, the tallest first
    var running = entries.map(function () { return 0; }), stacked = [];
    categories.forEach(function (category) {
      running = running.map(function (sum, i) { return sum + (entries[i].by_category[category] || 0); });
      stacked.push(running);
    });
    var data = [entries.map(function (_, i) { return i; })].concat(stacked.slice().reverse());
    holder.dataset.points = String(entries.length);
    holder.dataset.state = "ok";
    if (state && state.key === key) {
      state.entries = entries;
      state.plot.setData(data);
      return;
    }
    destroyChart(holder);
    state = charts[holder.id] = { key: key, entries: entries };
    var labels = entries.map(function (e, i) { return shortLabel(e.label, i); });
    var order = categories.slice().reverse();
    var series = [{
      label: unit,
      value: function (u, index) {
        var entry = state.entries[index];
        return entry ? entry.label + ": " + money(entry.total) : DASH;
      }
    }].concat(order.map(function (category) {
      var color = COLORS[categories.indexOf(category) % COLORS.length];
      return {
        label: category, stroke: color, fill: color, width: 0, points: { show: false },
        paths: uPlot.paths.bars({ size: [0.75, 40] }),
        value: function (u, raw, seriesIndex, index) {
          var entry = index === null || index === undefined ? null : state.entries[index];
          return entry ? money(entry.by_category[category]) : DASH;
        }
      };
    }));
    state.plot = new uPlot({
      width: chartWidth(holder), height: 220,
      scales: { x: { time: false, range: [-0.6, entries.length - 0.4] } },
      axes: [
        { splits: function (u) {
            // As many labels as fit, every step-th one, the newest always named
            var fit = Math.max(1, Math.floor(u.width / minSpacing)), step = Math.ceil(labels.length / fit);
            var ticks = [];
            for (var i = labels.length - 1; i >= 0; i -= step) {
              ticks.unshift(i);
            }
            return ticks;
          },
          values: function (u, splits) { return splits.map(function (i) { return labels[i] || ""; }); } },
        { values: function (u, splits) { return splits.map(compactMoney); }, size: 56 }
      ],
      series: series
    }, data, holder);
  }

  function destroyChart(holder) {
    var state = charts[holder.id];
    if (state) {
      state.plot.destroy();
      delete charts[holder.id];
    }
    clear(holder);
  }

  function noChart(holder) {
    destroyChart(holder);
    holder.appendChild(make("p", "no-data", DASH));
    holder.dataset.points = "0";
    holder.dataset.state = "missing";
  }

  /** The cards and charts from GET /api/dashboard/savings (or "–" when it failed). */
  function renderSavings(result) {
    var section = document.getElementById("savings");
    var daily = document.getElementById("chart-daily"), monthly = document.getElementById("chart-monthly");
    if (!result.ok) {
      PERIODS.forEach(function (period) { fillCard(period, null, []); });
      noChart(daily);
      noChart(monthly);
      section.dataset.state = "missing";
      section.removeAttribute("data-time");
      return;
    }
    var body = result.body;
    PERIODS.forEach(function (period) { fillCard(period, body[period], body.categories); });
    section.dataset.time = body.time;
    section.dataset.state = "ok";
    // The zone and moment the figures are for: the page's ?tz= and ?time= may differ from the receiver's own
    var line = document.getElementById("refreshed"), asOf = line.querySelector(".as-of");
    line.querySelector(".zone").textContent = body.timezone;
    asOf.hidden = SAVINGS_QUERY.indexOf("time=") < 0;
    asOf.textContent = asOf.hidden ? "" : ", as of " + body.time;
    if (typeof uPlot === "undefined") {
      return; // the library did not load: the cards still say it all
    }
    drawSavings(daily, body.daily, body.categories, "day", dayLabel, 46);
    drawSavings(monthly, body.monthly, body.categories, "month", monthLabel, 52);
  }

  // --- machines and cost ------------------------------------------------------------------------------------
  function maxDisk(machine) {
    var ratios = (machine.disks || []).map(function (d) { return d.ratio; }).filter(isNumber);
    return ratios.length ? Math.max.apply(null, ratios) : null;
  }

  function sortValue(machine, key) {
    if (key === "state") {
      return STATES.indexOf(machine.state);
    }
    if (key === "disk") {
      return maxDisk(machine);
    }
    if (key === "alerts") {
      return machine.alerts === null ? null : machine.alerts.length;
    }
    return machine[key];
  }

  function compareMachines(a, b) {
    var x = sortValue(a, sort.key), y = sortValue(b, sort.key);
    // Missing readings go last whichever way the column is sorted
    if (x === null || x === undefined) {
      return y === null || y === undefined ? a.machine_id.localeCompare(b.machine_id) : 1;
    }
    if (y === null || y === undefined) {
      return -1;
    }
    var order = typeof x === "number" ? x - y : String(x).localeCompare(String(y));
    return order * sort.direction || a.machine_id.localeCompare(b.machine_id);
  }

  function alertLinks(cell, alerts) {
    if (alerts === null) {
      cell.textContent = DASH; // no Alertmanager answered: unknown, not "none"
      return;
    }
    if (!alerts.length) {
      cell.appendChild(make("span", "muted", "none"));
      return;
    }
    alerts.forEach(function (alert) {
      var link = make(sameSitePath(alert.url) ? "a" : "span", "alert sev-" + alert.severity, alert.alertname);
      if (link.tagName === "A") {
        link.href = alert.url;
      }
      link.dataset.alertname = alert.alertname;
      link.dataset.fingerprint = alert.fingerprint;
      link.dataset.state = alert.state;
      link.title = alert.severity + ", " + alert.state + " since " + alert.starts_at;
      if (alert.state !== "active") {
        link.classList.add("suppressed");
        link.textContent += " (" + alert.state + ")";
      }
      cell.appendChild(link);
    });
  }

  function machineRow(machine) {
    var row = make("tr", "state-" + machine.state);
    row.dataset.machine = machine.machine_id;
    row.dataset.state = machine.state;
    function cell(className, text) {
      return row.appendChild(make("td", className, text));
    }
    cell("machine", machine.machine_id);
    cell("", machine.machine_type || DASH);
    cell("", machine.provider || DASH);
    cell("state").appendChild(make("span", "badge state-" + machine.state, machine.state));
    cell("num", machine.state === "retired" ? DASH : seconds(machine.uptime_seconds));
    cell("num", isNumber(machine.cpu_percent) ? machine.cpu_percent.toFixed(0) + " %" : DASH);
    cell("num", percent(machine.memory_ratio));
    var disks = cell("num disks");
    if (!machine.disks || !machine.disks.length) {
      disks.textContent = DASH;
    }
    (machine.disks || []).forEach(function (disk) {
      var item = disks.appendChild(make("span", "disk", disk.mount + " " + percent(disk.ratio)));
      item.dataset.mount = disk.mount;
    });
    cell("num", money(machine.cost_hourly_usd));
    cell("num", isNumber(machine.sync_age_seconds) ? seconds(machine.sync_age_seconds) + " ago" : DASH);
    cell("num", seconds(machine.sync_p95_seconds));
    alertLinks(cell("alerts"), machine.alerts);
    return row;
  }

  function drawMachines() {
    var tbody = document.querySelector("#machines tbody");
    document.querySelectorAll("#machines th[data-sort]").forEach(function (th) {
      if (th.dataset.sort === sort.key) {
        th.setAttribute("aria-sort", sort.direction > 0 ? "ascending" : "descending");
      } else {
        th.removeAttribute("aria-sort");
      }
    });
    if (machines === null) {
      messageRow(tbody, 12, DASH + " (no figures: see above)");
      return;
    }
    if (!machines.length) {
      messageRow(tbody, 12, "Prometheus knows no machine.");
      return;
    }
    clear(tbody);
    machines.slice().sort(compareMachines).forEach(function (machine) { tbody.appendChild(machineRow(machine)); });
  }

  /** The machine table, the fleet's totals and the cost per provider from GET /api/dashboard/metrics/realtime. */
  function renderRealtime(result) {
    var totals = clear(document.getElementById("machine-totals"));
    var costs = clear(document.querySelector("#cost-by-provider tbody"));
    var costTotal = document.querySelector("#cost-by-provider tfoot .total");
    document.getElementById("fleet").dataset.state = result.ok ? "ok" : "missing";
    document.getElementById("cost").dataset.state = result.ok ? "ok" : "missing";
    if (!result.ok) {
      machines = null;
      drawMachines();
      totals.textContent = DASH;
      messageRow(costs, 2, DASH);
      costTotal.textContent = DASH;
      return;
    }
    var body = result.body;
    machines = body.machines;
    drawMachines();
    totals.appendChild(document.createTextNode(body.totals.machines + " machine(s): "));
    STATES.forEach(function (state, index) {
      var count = totals.appendChild(make("span", "count state-" + state,
                                          body.totals.by_state[state] + " " + state));
      count.dataset.state = state;
      if (index < STATES.length - 1) {
        totals.appendChild(document.createTextNode(", "));
      }
    });
    var providers = Object.keys(body.totals.cost_hourly_usd_by_provider).sort();
    if (!providers.length) {
      messageRow(costs, 2, "No machine reports a cost.");
    }
    providers.forEach(function (provider) {
      var row = costs.appendChild(make("tr"));
      row.dataset.provider = provider;
      row.appendChild(make("td", "", provider));
      row.appendChild(make("td", "num value", money(body.totals.cost_hourly_usd_by_provider[provider])));
    });
    costTotal.textContent = money(body.totals.cost_hourly_usd);
  }

  // --- health -----------------------------------------------------------------------------------------------
  function healthClass(value) {
    // As the exporter defines it: 1 healthy, 0 down, in between degraded
    return !isNumber(value) ? "" : value >= 1 ? "health-ok" : value <= 0 ? "health-down" : "health-degraded";
  }

  function renderComponents(components) {
    var tbody = document.querySelector("#components tbody");
    if (components === null || components === undefined) {
      messageRow(tbody, 2, DASH);
      return;
    }
    if (!components.length) {
      messageRow(tbody, 2, "No component reports its health.");
      return;
    }
    clear(tbody);
    components.forEach(function (component) {
      var row = tbody.appendChild(make("tr"));
      row.dataset.component = component.component;
      row.appendChild(make("td", "", component.component));
      var value = row.appendChild(make("td", "num"));
      value.appendChild(make("span", "badge " + healthClass(component.health),
                             isNumber(component.health) ? component.health.toFixed(2) : DASH));
    });
  }

  function renderAlertCounts(counts) {
    var tbody = document.querySelector("#alert-status tbody");
    if (counts === null || counts === undefined) {
      messageRow(tbody, 4, DASH);
      return;
    }
    var states = ["firing", "silenced", "inhibited"], seen = {};
    states.forEach(function (state) { Object.keys(counts[state] || {}).forEach(function (s) { seen[s] = true; }); });
    var severities = Object.keys(seen).sort(function (a, b) {
      var x = SEVERITIES.indexOf(a), y = SEVERITIES.indexOf(b);
      return (x < 0 ? 99 : x) - (y < 0 ? 99 : y) || a.localeCompare(b);
    });
    if (!severities.length) {
      messageRow(tbody, 4, "No alert.");
      return;
    }
    clear(tbody);
    severities.forEach(function (severity) {
      var row = tbody.appendChild(make("tr"));
      row.dataset.severity = severity;
      row.appendChild(make("td")).appendChild(make("span", "sev sev-" + severity, severity));
      states.forEach(function (state) {
        var n = (counts[state] || {})[severity] || 0;
        row.appendChild(make("td", "num " + state + (n && state === "firing" ? " firing-some" : ""), String(n)));
      });
    });
  }

  function renderDeadman(deadman, at) {
    var row = document.getElementById("deadman"), value = clear(row.querySelector(".value"));
    if (deadman === undefined) {
      row.dataset.state = "";
      value.textContent = DASH;
      return;
    }
    if (deadman === null) {
      row.dataset.state = "";
      value.appendChild(make("span", "muted", "not configured"));
      return;
    }
    row.dataset.state = deadman.state;
    value.appendChild(make("span", "badge " + (deadman.state === "up" ? "health-ok" : "health-down"), deadman.state));
    var heard = deadman.last_heartbeat
      ? " last heartbeat " + clock(deadman.last_heartbeat) + " (" +
        seconds(Math.max(0, (Date.parse(at) - Date.parse(deadman.last_heartbeat)) / 1000)) + " before)"
      : " no heartbeat yet";
    value.appendChild(document.createTextNode(heard + ", timeout " + seconds(deadman.timeout_seconds) +
                                              ", channel " + deadman.channel));
  }

  function serviceValue(cell, service) {
    clear(cell);
    if (!service) {
      cell.textContent = DASH;
      return;
    }
    cell.appendChild(make("span", "badge " + (service.up ? "health-ok" : "health-down"), service.up ? "up" : "down"));
    cell.appendChild(make("span", "url", " " + (service.url || "(not configured)")));
    if (service.error) {
      cell.appendChild(make("span", "reason", ": " + service.error));
    }
  }

  /** Components, alert counts, the dead man's switch and the sources from GET /api/dashboard/health. */
  function renderHealth(result) {
    var body = result.ok ? result.body : null;
    ["components", "alert-status", "services"].forEach(function (id) {
      document.getElementById(id).dataset.state = result.ok ? "ok" : "missing";
    });
    renderComponents(body ? body.components : undefined);
    renderAlertCounts(body ? body.alerts : undefined);
    renderDeadman(body ? body.deadman : undefined, body && body.time);
    var prometheus = document.getElementById("service-prometheus");
    prometheus.dataset.up = body ? String(body.services.prometheus.up) : "";
    serviceValue(prometheus.querySelector(".value"), body && body.services.prometheus);
    var peers = clear(document.getElementById("service-alertmanagers"));
    var list = body ? body.services.alertmanagers : [];
    if (body && !list.length) {
      var none = peers.appendChild(make("tr"));
      none.appendChild(make("th", "", "Alertmanager"));
      none.appendChild(make("td", "muted", "not configured"));
    }
    list.forEach(function (peer) {
      var row = peers.appendChild(make("tr", "service-alertmanager"));
      row.dataset.url = peer.url;
      row.dataset.up = String(peer.up);
      row.appendChild(make("th", "", "Alertmanager"));
      serviceValue(row.appendChild(make("td", "value")), peer);
    });
  }

  // --- banner and refresh -----------------------------------------------------------------------------------
  // What each API's figures are, for the banner to say which ones show "–"
  var AFFECTS = { savings: ["savings"], realtime: ["machines", "cost"], health: ["component health", "alerts"] };

  function problemsOf(results) {
    // Each source once, however many APIs report it missing, with every part of the page it leaves empty
    var byKey = {}, out = [];
    function add(problem, affects) {
      var known = byKey[problem.key];
      if (!known) {
        known = byKey[problem.key] = { key: problem.key, text: problem.text, affects: [] };
        out.push(known);
      }
      affects.forEach(function (part) {
        if (known.affects.indexOf(part) < 0) {
          known.affects.push(part);
        }
      });
    }
    results.forEach(function (result) {
      if (!result.ok) {
        result.problems.forEach(function (problem) { add(problem, AFFECTS[result.name]); });
        return;
      }
      // One Alertmanager of several missing leaves the alerts whole: "–" only when none answered
      var noAlerts = result.name === "health" ? result.body.alerts === null
        : (result.body.machines || []).some(function (m) { return m.alerts === null; });
      (result.body.missing || []).forEach(function (m) {
        add(sourceProblem(m.service, m.url, m.error),
            m.service === "prometheus" ? ["component health"] : noAlerts ? ["alerts"] : []);
      });
    });
    return out;
  }

  function showBanner(problems) {
    var banner = document.getElementById("banner"), list = clear(banner.querySelector("ul"));
    problems.forEach(function (problem) {
      var text = problem.text + (problem.affects && problem.affects.length
        ? ". No figures for: " + problem.affects.join(", ") + "." : "");
      var item = list.appendChild(make("li", "", text));
      item.dataset.key = problem.key;
    });
    banner.hidden = !problems.length;
  }

  function stamp(problems, failed) {
    var line = document.getElementById("refreshed"), when = line.querySelector(".when"), now = new Date();
    refreshes += 1;
    when.textContent = now.toLocaleTimeString();
    when.setAttribute("datetime", now.toISOString());
    line.dataset.state = failed === 3 ? "error" : problems.length ? "partial" : "ok";
    line.dataset.count = String(refreshes);
  }

  /** Fetch the three APIs at once, draw what they say, and go again REFRESH_MS after the last one answered. */
  function refresh() {
    Promise.all([load("savings"), load("realtime"), load("health")])
      .then(function (results) {
        var problems = problemsOf(results);
        renderSavings(results[0]);
        renderRealtime(results[1]);
        renderHealth(results[2]);
        showBanner(problems);
        stamp(problems, results.filter(function (r) { return !r.ok; }).length);
      })
      .catch(function (error) {
        // A bug of this script: said in the banner rather than leaving figures that look current
        showBanner([{ key: "page", text: "The page could not draw the figures: " + error }]);
      })
      .then(function () { setTimeout(refresh, REFRESH_MS); });
  }

  document.querySelector("#machines thead").addEventListener("click", function (event) {
    var th = event.target.closest("th[data-sort]");
    if (!th) {
      return;
    }
    sort = { key: th.dataset.sort, direction: sort.key === th.dataset.sort ? -sort.direction : 1 };
    drawMachines();
  });

  var resizing = null;
  window.addEventListener("resize", function () {
    // Once per frame however many resize events: each chart takes its holder's new width
    if (resizing === null) {
      resizing = window.requestAnimationFrame(function () {
        resizing = null;
        Object.keys(charts).forEach(function (id) {
          charts[id].plot.setSize({ width: chartWidth(document.getElementById(id)), height: 220 });
        });
      });
    }
  });

  refresh();
})();
