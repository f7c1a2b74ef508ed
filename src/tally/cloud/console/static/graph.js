/* tally console: the knowledge graph's charts (ECharts). Each [data-chart] element of a
   graph page names its kind and the API endpoint (data-src) it draws; it gets
   data-ready="1" once drawn, "empty" when there is nothing to draw. Plain ES2017. */
(function () {
  "use strict";
  var body = document.body;
  var locale = body.getAttribute("data-locale") || "zh-CN";
  var texts = {};
  try { texts = JSON.parse(document.getElementById("console-texts").textContent); } catch (e) { texts = {}; }
  var t = function (k, n) { var s = texts[k] || k; return n === undefined ? s : s.replace("{n}", n); };
  var money = new Intl.NumberFormat(locale, { style: "currency", currency: "CNY", notation: "compact", maximumFractionDigits: 1 });
  var yuan = function (fen) { return money.format((fen || 0) / 100); };
  var palette = ["#1c5fa8", "#1e8e5a", "#c98a00", "#c23b32", "#7a5fc0", "#2aa3b8", "#8a97a8", "#d0679d"];

  function getJSON(url) {
    return fetch(url, { credentials: "same-origin", headers: { accept: "application/json" } }).then(function (r) {
      if (!r.ok) { return r.json().catch(function () { return {}; }).then(function (p) { throw new Error(p.detail || r.status); }); }
      return r.json();
    });
  }
  function empty(el, msg) { el.classList.add("chart-empty"); el.textContent = msg || t("no_data"); el.setAttribute("data-ready", "empty"); }
  function draw(el, option) {
    var chart = echarts.getInstanceByDom(el) || echarts.init(el, null, { renderer: "svg" });
    chart.setOption(Object.assign({ animation: false, color: palette }, option), true);
    window.addEventListener("resize", function () { chart.resize(); });
    el.setAttribute("data-ready", "1");
  }
  function openFirm(params) {
    if (params.dataType === "node" && params.data && params.data.firm) {
      window.location.href = "/console/graph/firm/" + encodeURIComponent(params.data.firm);
    }
  }
  function graph(el, nodes, links, cats, layout, extra) {
    draw(el, {
      tooltip: {}, legend: [{ data: cats.map(function (c) { return c.name; }), bottom: 0 }],
      series: [Object.assign({
        type: "graph", layout: layout, roam: true, draggable: layout === "force", categories: cats, data: nodes, links: links,
        label: { show: nodes.length <= 60, position: "right", fontSize: 10 }, emphasis: { focus: "adjacency" },
        lineStyle: { color: "source", opacity: 0.6 }
      }, extra || {})]
    });
    var chart = echarts.getInstanceByDom(el);
    chart.on("click", openFirm);
  }

  var kinds = {
    "graph-tiers": function (el, d) {
      var tiers = d.tiers || [];
      if (!tiers.length) { return empty(el); }
      var tierOf = {}; tierOf[d.core] = 0;
      tiers.forEach(function (x) { x.firms.forEach(function (f) { tierOf[f] = x.tier; }); });
      var cats = [{ name: t("core") }];
      tiers.forEach(function (x) { cats.push({ name: t("tier", x.tier) }); });
      var count = {};
      var nodes = Object.keys(tierOf).map(function (id) {
        var k = tierOf[id]; count[k] = (count[k] || 0) + 1;
        return { id: id, name: id, firm: id, category: k, x: k * 200, y: count[k] * 24,
                 symbolSize: k === 0 ? 30 : Math.max(8, 18 - 3 * k) };
      });
      var links = (d.edges || []).filter(function (e) { return tierOf[e.supplier] !== undefined && tierOf[e.buyer] !== undefined; })
        .map(function (e) { return { source: e.supplier, target: e.buyer }; });
      graph(el, nodes, links, cats, "force", { force: { repulsion: 120, edgeLength: [30, 80], gravity: 0.1 },
        edgeSymbol: ["none", "arrow"], edgeSymbolSize: 5 });
    },
    "graph-neighbourhood": function (el, d) {
      var rel = d.relatives || [];
      var cats = [{ name: t("graph_firm") }, { name: t("graph_person") }, { name: t("graph_address") }, { name: t("graph_account") }];
      var nodes = [{ id: d.firm, name: d.firm, firm: d.firm, category: 0, symbolSize: 30 }];
      var seen = {}; seen[d.firm] = 1;
      var links = [];
      var cat = { person: 1, address: 2, account: 3 };
      rel.forEach(function (r) {
        if (!seen[r.firm]) { seen[r.firm] = 1; nodes.push({ id: r.firm, name: r.firm, firm: r.firm, category: 0, symbolSize: 16 }); }
        r.links.forEach(function (k) {
          var id = k.kind + ":" + k.value;
          if (!seen[id]) { seen[id] = 1; nodes.push({ id: id, name: k.value, category: cat[k.kind], symbolSize: 10, symbol: "diamond" }); links.push({ source: d.firm, target: id, value: k.role }); }
          links.push({ source: r.firm, target: id, value: k.other_role });
        });
      });
      if (nodes.length === 1) { return empty(el); }
      graph(el, nodes, links, cats, "force", { force: { repulsion: 160, edgeLength: [40, 100], gravity: 0.08 } });
    },
    "graph-circle": function (el, d) {
      var items = d.items || [];
      var c = items[parseInt(el.getAttribute("data-index") || "0", 10)] || items[0];
      if (!c) { return empty(el); }
      var nodes = c.firms.map(function (f) { return { id: f, name: f, firm: f, category: 0, symbolSize: 26 }; });
      var links = c.firms.map(function (f, i) {
        return { source: f, target: c.firms[(i + 1) % c.firms.length], label: { show: true, formatter: c.hops[i].join(", "), fontSize: 9 } };
      });
      graph(el, nodes, links, [{ name: t("graph_guarantee") }], "circular", {
        circular: { rotateLabel: false }, edgeSymbol: ["none", "arrow"], edgeSymbolSize: 10,
        lineStyle: { color: "#c23b32", width: 2, curveness: 0.2 }, label: { show: true, position: "right" }
      });
    },
    "graph-contagion": function (el, d) {
      var tiers = Object.keys(d.by_tier || {});
      if (!tiers.length) { return empty(el); }
      draw(el, {
        tooltip: { trigger: "axis", valueFormatter: function (v) { return yuan(v); } },
        grid: { left: 70, right: 16, top: 16, bottom: 30 },
        xAxis: { type: "category", data: tiers.map(function (k) { return k === "other" ? t("graph_other") : t("tier", k); }) },
        yAxis: { type: "value", axisLabel: { formatter: function (v) { return yuan(v); } } },
        series: [{ type: "bar", name: t("graph_losses"), data: tiers.map(function (k) { return d.by_tier[k]; }), barMaxWidth: 36 }]
      });
    },
    "graph-needs": function (el, d) {
      var items = d.items || [];
      if (!items.length) { return empty(el); }
      draw(el, {
        tooltip: { trigger: "axis", valueFormatter: function (v) { return yuan(v); } },
        grid: { left: 100, right: 24, top: 16, bottom: 30 },
        xAxis: { type: "value", axisLabel: { formatter: function (v) { return yuan(v); } } },
        yAxis: { type: "category", inverse: true, data: items.map(function (n) { return n.firm; }) },
        series: [{ type: "bar", name: t("graph_receivables"), data: items.map(function (n) { return n.receivables; }), barMaxWidth: 18 }]
      });
    },
    "graph-brief-counts": function (el) {
      var counts = {};
      try { counts = JSON.parse(el.getAttribute("data-counts") || "{}"); } catch (e) { counts = {}; }
      var keys = Object.keys(counts);
      if (!keys.some(function (k) { return counts[k]; })) { return empty(el); }
      draw(el, {
        tooltip: { trigger: "axis" }, grid: { left: 150, right: 24, top: 10, bottom: 24 },
        xAxis: { type: "value", minInterval: 1 },
        yAxis: { type: "category", inverse: true, data: keys.map(function (k) { return t("graph_section_" + k); }) },
        series: [{ type: "bar", data: keys.map(function (k) { return counts[k]; }), barMaxWidth: 16 }]
      });
    }
  };

  document.querySelectorAll("[data-chart]").forEach(function (el) {
    var kind = el.getAttribute("data-chart");
    if (el.getAttribute("data-ready") || !kinds[kind]) { return; }
    var src = el.getAttribute("data-src");
    if (!src) { kinds[kind](el, {}); return; }
    getJSON(src).then(function (d) { kinds[kind](el, d); }).catch(function (e) { empty(el, t("load_failed") + e.message); });
  });
})();
