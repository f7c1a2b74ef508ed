/* tally console: charts (ECharts), devices and telemetry, live events (SSE) and the
   verification drop zone. Plain ES2017, no build step. Every chart fetches JSON from the API
   (same origin, the session cookie); texts come from the page's #console-texts block. */
(function () {
  "use strict";
  var body = document.body;
  var locale = body.getAttribute("data-locale") || "zh-CN";
  var texts = {};
  try { texts = JSON.parse(document.getElementById("console-texts").textContent); } catch (e) { texts = {}; }
  var t = function (k, n) { var s = texts[k] || k; return n === undefined ? s : s.replace("{n}", n); };
  var nf = new Intl.NumberFormat(locale, { maximumFractionDigits: 2 });
  var money = new Intl.NumberFormat(locale, { style: "currency", currency: "CNY", notation: "compact", maximumFractionDigits: 1 });
  var yuan = function (fen) { return money.format((fen || 0) / 100); };
  var when = new Intl.DateTimeFormat(locale, { timeZone: "Asia/Shanghai", hour: "2-digit", minute: "2-digit", second: "2-digit" });
  var hhmm = new Intl.DateTimeFormat(locale, { timeZone: "Asia/Shanghai", hour: "2-digit", minute: "2-digit" });
  var whenFull = new Intl.DateTimeFormat(locale, { timeZone: "Asia/Shanghai", dateStyle: "medium", timeStyle: "short" });
  var palette = ["#1c5fa8", "#1e8e5a", "#c98a00", "#c23b32", "#7a5fc0", "#2aa3b8", "#8a97a8", "#d0679d"];
  var charts = [];

  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { accept: "application/json" } }).then(function (r) {
      if (!r.ok) { return r.json().catch(function () { return {}; }).then(function (p) { throw new Error(p.detail || r.status); }); }
      return r.json();
    });
  }
  function empty(el, msg) { el.classList.add("chart-empty"); el.textContent = msg || t("no_data"); el.setAttribute("data-ready", "empty"); }
  function draw(el, option) {
    var chart = echarts.getInstanceByDom(el) || echarts.init(el, null, { renderer: "svg" });
    chart.setOption(Object.assign({ animation: false, color: palette, textStyle: { fontFamily: getComputedStyle(body).fontFamily } }, option), true);
    if (charts.indexOf(chart) < 0) { charts.push(chart); }
    el.setAttribute("data-ready", "1");
    return chart;
  }
  function bars(el, labels, values, horizontal, name) {
    if (!labels.length) { return empty(el); }
    var cat = { type: "category", data: labels, axisLabel: { interval: 0, width: 110, overflow: "truncate" } };
    var val = { type: "value", axisLabel: { formatter: function (v) { return yuan(v); } } };
    draw(el, {
      tooltip: { trigger: "axis", valueFormatter: function (v) { return yuan(v); } },
      grid: { left: horizontal ? 120 : 60, right: 24, top: 16, bottom: 36 },
      xAxis: horizontal ? val : cat, yAxis: horizontal ? Object.assign(cat, { inverse: true }) : val,
      series: [{ type: "bar", name: name, data: values, barMaxWidth: 28, itemStyle: { borderRadius: 3 } }]
    });
  }

  var kinds = {
    gauge: function (el) {
      var v = parseFloat(el.getAttribute("data-value"));
      if (isNaN(v)) { return empty(el); }
      var pct = Math.round(v * 1000) / 10;
      var tone = pct >= 80 ? "#1e8e5a" : (pct >= 50 ? "#c98a00" : "#c23b32");
      draw(el, { series: [{
        type: "gauge", min: 0, max: 100, radius: "95%", center: ["50%", "58%"], startAngle: 210, endAngle: -30,
        progress: { show: true, width: 16, itemStyle: { color: tone } },
        axisLine: { lineStyle: { width: 16, color: [[1, "#e8ecf2"]] } },
        pointer: { show: false }, axisTick: { show: false }, splitLine: { show: false },
        axisLabel: { distance: 22, color: "#8a97a8", fontSize: 11 },
        detail: { formatter: function (x) { return nf.format(x) + "%"; }, fontSize: 28, fontWeight: 600, color: "#1d2733", offsetCenter: [0, "0%"] },
        data: [{ value: pct }]
      }] });
    },
    coverage: function (el, d) {
      var order = ["<1.2", "1.2-1.3", "1.3-1.5", ">=1.5", "unknown"];
      var colours = ["#c23b32", "#c98a00", "#3b7dd8", "#1e8e5a", "#b8c1cc"];
      var cov = d.coverage || {};
      if (!order.some(function (k) { return cov[k] && cov[k].count; })) { return empty(el); }
      draw(el, {
        tooltip: { trigger: "axis", valueFormatter: function (v) { return yuan(v); } },
        grid: { left: 70, right: 16, top: 16, bottom: 30 },
        xAxis: { type: "category", data: order.map(function (k) { return k === "unknown" ? "?" : k; }) },
        yAxis: { type: "value", axisLabel: { formatter: function (v) { return yuan(v); } } },
        series: [{ type: "bar", name: t("outstanding"), barMaxWidth: 42, data: order.map(function (k, i) {
          return { value: (cov[k] || {}).outstanding_fen || 0, itemStyle: { color: colours[i], borderRadius: 3 } };
        }) }]
      });
    },
    "tiers-graph": function (el, d) {
      var core = el.getAttribute("data-core");
      var edges = d.edges || [];
      if (!edges.length) { return empty(el); }
      var tierOf = {}; tierOf[core] = 0;
      edges.forEach(function (e) { if (tierOf[e.to] === undefined) { tierOf[e.to] = e.tier; } });
      var maxTier = 0;
      var nodes = Object.keys(tierOf).map(function (id) {
        maxTier = Math.max(maxTier, tierOf[id]);
        return { id: id, name: id, category: tierOf[id], symbolSize: tierOf[id] === 0 ? 34 : Math.max(10, 22 - 4 * tierOf[id]) };
      });
      var cats = [];
      for (var i = 0; i <= maxTier; i++) { cats.push({ name: i === 0 ? t("core") : t("tier", i) }); }
      draw(el, {
        tooltip: {}, legend: [{ data: cats.map(function (c) { return c.name; }), bottom: 0 }],
        series: [{ type: "graph", layout: "force", roam: true, draggable: true, categories: cats, data: nodes,
          links: edges.map(function (e) { return { source: e.from, target: e.to }; }),
          force: { repulsion: 140, edgeLength: [40, 90], gravity: 0.08 }, label: { show: nodes.length <= 40, position: "right", fontSize: 10 },
          lineStyle: { color: "source", opacity: 0.5 }, emphasis: { focus: "adjacency" } }]
      });
    },
    "tiers-bars": function (el, d) {
      var tiers = d.tiers || [];
      if (!tiers.length) { return empty(el); }
      draw(el, {
        tooltip: { trigger: "axis" }, legend: { bottom: 0 }, grid: { left: 60, right: 60, top: 16, bottom: 50 },
        xAxis: { type: "category", data: tiers.map(function (x) { return t("tier", x.tier); }) },
        yAxis: [{ type: "value", name: t("suppliers") }, { type: "value", axisLabel: { formatter: function (v) { return yuan(v); } } }],
        series: [{ type: "bar", name: t("suppliers"), data: tiers.map(function (x) { return x.suppliers; }), barMaxWidth: 30 },
          { type: "line", name: t("notes_amount"), yAxisIndex: 1, data: tiers.map(function (x) { return x.notes_amount_fen || 0; }),
            tooltip: { valueFormatter: function (v) { return yuan(v); } } }]
      });
    },
    "by-industry": function (el, d) {
      var rows = d.by_industry || [];
      bars(el, rows.map(function (r) { return r.industry || t("not_recorded"); }), rows.map(function (r) { return r.amount_fen; }), true, t("amount"));
    },
    "by-region": function (el, d) {
      var rows = d.by_region || [];
      bars(el, rows.map(function (r) { return r.region || t("not_recorded"); }), rows.map(function (r) { return r.amount_fen; }), false, t("amount"));
    }
  };

  function initCharts(root) {
    root.querySelectorAll("[data-chart]").forEach(function (el) {
      var kind = el.getAttribute("data-chart");
      if (el.getAttribute("data-ready") || !kinds[kind]) { return; }
      var src = el.getAttribute("data-src");
      if (!src) { kinds[kind](el, {}); return; }
      getJSON(src).then(function (d) { kinds[kind](el, d); }).catch(function (e) { empty(el, t("load_failed") + e.message); });
    });
  }

  /* devices and telemetry (warehouse) */
  var telemetry = { device: null, timer: null };
  function showDevice(id) {
    var el = document.querySelector("[data-chart=telemetry]");
    if (!el) { return; }
    telemetry.device = id;
    document.querySelectorAll("[data-telemetry-device]").forEach(function (s) { s.textContent = id; });
    var load = function () {
      getJSON("/v1/devices/" + encodeURIComponent(id) + "/readings?limit=500").then(function (d) {
        var series = {};
        (d.items || []).forEach(function (it) {
          (it.measurements || []).forEach(function (m) {
            var key = m.quantity + (m.unit ? " (" + m.unit + ")" : "");
            (series[key] = series[key] || []).push([it.t, parseFloat(m.value)]);
          });
        });
        var names = Object.keys(series);
        if (!names.length) { return empty(el); }
        el.classList.remove("chart-empty");
        draw(el, {
          tooltip: { trigger: "axis" }, legend: { bottom: 0 }, grid: { left: 50, right: 20, top: 16, bottom: 56 },
          xAxis: { type: "time", axisLabel: { hideOverlap: true, formatter: function (v) { return hhmm.format(new Date(v)); } } },
          yAxis: { type: "value", scale: true },
          series: names.map(function (n) { return { type: "line", name: n, showSymbol: false, data: series[n].sort(function (a, b) { return a[0] - b[0]; }) }; })
        });
      }).catch(function (e) { empty(el, t("load_failed") + e.message); });
    };
    load();
    if (telemetry.timer) { clearInterval(telemetry.timer); }
    telemetry.timer = setInterval(load, 10000);
  }
  function initDevices(root) {
    root.querySelectorAll("[data-devices]").forEach(function (tbody) {
      getJSON(tbody.getAttribute("data-devices")).then(function (d) {
        var list = d.devices || [];
        tbody.textContent = "";
        list.forEach(function (dev) {
          var tr = document.createElement("tr");
          tr.setAttribute("data-testid", "device-row");
          var cells = [dev.id, dev.site || "—", dev.profile || "—", dev.last_seen ? whenFull.format(new Date(dev.last_seen)) : t("never")];
          cells.forEach(function (text, i) {
            var td = document.createElement("td");
            if (i === 0) { var dot = document.createElement("span"); dot.className = "dot" + (dev.online ? " on" : ""); dot.title = t(dev.online ? "online" : "offline"); td.appendChild(dot); td.className = "mono"; }
            td.appendChild(document.createTextNode(text));
            tr.appendChild(td);
          });
          var td = document.createElement("td"); var b = document.createElement("button");
          b.className = "btn btn-small"; b.type = "button"; b.textContent = t("show");
          b.addEventListener("click", function () { showDevice(dev.id); });
          td.appendChild(b); tr.appendChild(td); tbody.appendChild(tr);
        });
        document.querySelectorAll("[data-devices-count]").forEach(function (s) { s.textContent = nf.format(list.length); });
        if (!list.length) { var tr = document.createElement("tr"); tr.innerHTML = "<td colspan='5' class='empty'></td>"; tr.firstChild.textContent = t("no_data"); tbody.appendChild(tr); }
        if (list.length && !telemetry.device) { showDevice(list[0].id); }
      }).catch(function (e) { tbody.textContent = ""; var tr = document.createElement("tr"); var td = document.createElement("td"); td.colSpan = 5; td.className = "empty"; td.textContent = t("load_failed") + e.message; tr.appendChild(td); tbody.appendChild(tr); });
    });
  }

  /* live events (SSE) */
  function initLive(root) {
    root.querySelectorAll("[data-live]").forEach(function (ul) {
      if (ul.getAttribute("data-open") || !window.EventSource) { return; }
      ul.setAttribute("data-open", "1");
      var source = new EventSource(ul.getAttribute("data-live"));
      source.addEventListener("open", function () { ul.setAttribute("data-connected", "1"); });
      source.addEventListener("error", function () { ul.removeAttribute("data-connected"); });
      var first = true;
      var add = function (kind, data) {
        if (first) { ul.textContent = ""; first = false; }
        var li = document.createElement("li");
        var what = data.message || data.event || data.status || data.id || data.height || "";
        li.textContent = when.format(new Date()) + " · " + t("event." + kind) + (what !== "" ? " · " + what : "");
        ul.insertBefore(li, ul.firstChild);
        while (ul.children.length > 50) { ul.removeChild(ul.lastChild); }
        body.dispatchEvent(new CustomEvent("live-" + kind, { bubbles: true }));
      };
      ["alert", "block", "coverage", "receipt", "loan", "note", "application", "gap", "overflow"].forEach(function (kind) {
        source.addEventListener(kind, function (ev) { var d = {}; try { d = JSON.parse(ev.data); } catch (e) { d = {}; } add(kind, d); });
      });
    });
  }

  /* verification drop zone: a dropped file goes into the form's file input, then the form is sent */
  function initDrop(root) {
    root.querySelectorAll("[data-dropzone]").forEach(function (zone) {
      var input = zone.querySelector("input[type=file]");
      ["dragenter", "dragover"].forEach(function (n) { zone.addEventListener(n, function (e) { e.preventDefault(); zone.classList.add("over"); }); });
      ["dragleave", "drop"].forEach(function (n) { zone.addEventListener(n, function (e) { e.preventDefault(); zone.classList.remove("over"); }); });
      zone.addEventListener("drop", function (e) {
        if (!e.dataTransfer || !e.dataTransfer.files.length) { return; }
        input.files = e.dataTransfer.files;
        zone.querySelector("span").textContent = e.dataTransfer.files[0].name;
        zone.closest("form").requestSubmit();
      });
      input.addEventListener("change", function () { if (input.files.length) { zone.querySelector("span").textContent = input.files[0].name; } });
    });
  }

  function init(root) { initCharts(root); initDevices(root); initLive(root); initDrop(root); }
  document.addEventListener("DOMContentLoaded", function () { init(document); });
  document.addEventListener("htmx:load", function (e) { if (e.target !== body) { initCharts(e.target); } });
  window.addEventListener("resize", function () { charts.forEach(function (c) { c.resize(); }); });
})();
