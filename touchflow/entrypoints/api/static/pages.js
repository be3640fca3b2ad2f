// The report pages: each draws its data (embedded at render, the same JSON as
// GET /api/dashboard/<page>) and draws it again when the live stream says something
// happened (one fetch per page per batch of activity; the server never polls per viewer).
(function () {
  "use strict";
  const tf = window.touchflow;
  const charts = {};

  const pct = (v, digits) => (v === null || v === undefined ? "–" : (v * 100).toFixed(digits === undefined ? 1 : digits) + "%");
  const num = (v) => (v === null || v === undefined ? "–" : Number(v).toLocaleString("en-US"));
  const mins = (v) => {
    if (v === null || v === undefined) return "–";
    if (v < 60) return v.toFixed(0) + " min";
    if (v < 48 * 60) return (v / 60).toFixed(1) + " h";
    return (v / 1440).toFixed(1) + " d";
  };
  const hours = (v) => (v === null || v === undefined ? "–" : mins(v * 60));
  const money = (v, cur) => (v === null || v === undefined ? "–" :
    Number(v).toLocaleString("en-US", { maximumFractionDigits: 0 }) + (cur ? " " + cur : ""));

  function el(tag, attrs, children) {
    const e = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => {
      if (v === null || v === undefined || v === false) return;
      if (k === "text") e.textContent = v;
      else if (k === "class") e.className = v;
      else if (k.startsWith("data")) e.setAttribute(k.replace(/[A-Z]/g, (m) => "-" + m.toLowerCase()), v);
      else e.setAttribute(k, v);
    });
    (children || []).forEach((c) => e.appendChild(typeof c === "string" ? document.createTextNode(c) : c));
    return e;
  }

  // A table: columns [{label, value(row) -> text|Node, num: bool, cls(row)}]
  function table(rows, columns, opts) {
    const head = el("tr", {}, columns.map((c) => el("th", { class: c.num ? "num" : null, title: c.title, text: c.label })));
    const body = rows.map((r) => el("tr", opts && opts.rowAttrs ? opts.rowAttrs(r) : {}, columns.map((c) => {
      const v = c.value(r);
      const td = el("td", { class: [c.num ? "num" : "", c.cls ? c.cls(r) : ""].join(" ").trim() || null, dataCol: c.key || null });
      if (v instanceof Node) td.appendChild(v); else td.textContent = v;
      return td;
    })));
    return el("table", { class: "report" }, [el("thead", {}, [head]), el("tbody", {}, body)]);
  }

  function fill(id, node) {
    const box = document.getElementById(id);
    if (!box) return;
    box.replaceChildren(node);
  }

  function empty(text) { return el("p", { class: "empty muted", text: text || "No data for these filters." }); }

  // (Re)draw a Chart.js chart in the canvas inside box `id`; none (and a note) when there is nothing.
  function chart(id, config, hasData, height) {
    if (charts[id]) { charts[id].destroy(); delete charts[id]; }
    const box = document.getElementById(id);
    if (!box) return null;
    if (!hasData || typeof Chart === "undefined") { box.replaceChildren(empty()); box.style.height = ""; return null; }
    const canvas = el("canvas", { id: id + "-canvas", role: "img", "aria-label": box.dataset.label || id });
    box.replaceChildren(canvas);
    if (height) box.style.height = height + "px";
    config.options = Object.assign({ maintainAspectRatio: false, animation: false, responsive: true }, config.options || {});
    charts[id] = new Chart(canvas, config);
    return charts[id];
  }

  function badge(text, kind) { return el("span", { class: "badge " + kind, text: text }); }

  // -- overview -------------------------------------------------------------------------
  function overview(d) {
    const stages = d.funnel;
    const funnelRows = table(stages, [
      { label: "stage", value: (r) => r.stage },
      { label: "count", key: "count", num: true, value: (r) => num(r.count) },
      { label: "from previous", num: true, value: (r) => pct(r.conversion) },
      { label: "median time from previous", num: true, value: (r) => hours(r.median_hours_from_previous) },
    ], { rowAttrs: (r) => ({ dataStage: r.stage }) });
    fill("funnel-table", funnelRows);
    chart("funnel-chart", {
      type: "bar",
      data: { labels: stages.map((r) => r.stage), datasets: [{ label: "reached", data: stages.map((r) => r.count),
        backgroundColor: ["#bfdbfe", "#93c5fd", "#60a5fa", "#3b82f6", "#16a34a", "#15803d", "#a855f7", "#f59e0b"] }] },
      options: { indexAxis: "y", plugins: { legend: { display: false },
        tooltip: { callbacks: { afterLabel: (c) => { const r = stages[c.dataIndex]; return r.conversion === null ? "" : pct(r.conversion) + " of the stage before"; } } } },
        scales: { x: { beginAtZero: true, ticks: { precision: 0 } } } },
    }, stages.some((r) => r.count > 0), 40 + stages.length * 30);
    const w = d.week;
    const cards = ["sent", "replied", "meetings"].map((k) => {
      const now = w.this_week[k], before = w.last_week[k];
      const delta = now - before;
      const cls = delta > 0 ? "up" : delta < 0 ? "down" : "flat";
      return el("div", { class: "stat", dataMetric: k }, [
        el("div", { class: "stat-label", text: { sent: "touches sent", replied: "replies", meetings: "meetings" }[k] }),
        el("div", { class: "stat-value", dataWeek: "this", text: num(now) }),
        el("div", { class: "stat-delta " + cls }, [
          (delta > 0 ? "▲ " : delta < 0 ? "▼ " : "= ") + num(Math.abs(delta)) + " vs last week (",
          el("span", { dataWeek: "last", text: num(before) }), ")"]),
      ]);
    });
    fill("week-cards", el("div", { class: "stats" }, cards));
    const note = document.getElementById("week-range");
    if (note) note.textContent = w.this_week.from + " to " + w.this_week.to + " against " + w.last_week.from + " to " + w.last_week.to;
    if (d.pipeline) pipelineCard(d.pipeline);
    if (d.forecast && d.forecast.periods.length) {
      document.getElementById("forecast-card").hidden = false;
      const cur = d.forecast.currency;
      fill("forecast-cards", el("div", { class: "stats" }, d.forecast.periods.map((p) =>
        el("div", { class: "stat", dataPeriod: p.period }, [
          el("div", { class: "stat-label", text: p.period + " expected" }),
          el("div", { class: "stat-value", text: money(p.expected, cur) }),
          el("div", { class: "stat-delta", text: "P10 " + money(p.p10) + " – P90 " + money(p.p90) + " · won to date " + money(p.won_to_date) + " · weighted " + money(p.weighted_pipeline) }),
        ]))));
    }
  }

  function pipelineCard(p) {
    const box = document.getElementById("pipeline-card");
    if (!box) return;
    box.hidden = false;
    fill("pipeline-summary", table(p.rows || [], (p.columns || []).map((c) => ({
      label: c, key: c, num: typeof ((p.rows || [])[0] || {})[c] === "number",
      value: (r) => (typeof r[c] === "number" ? num(r[c]) : r[c] === null ? "–" : String(r[c])) }))));
  }

  // -- cadences -------------------------------------------------------------------------
  function cadences(d) {
    const rows = d.rows;
    const label = (r) => r.cadence + " · " + r.step + (r.variant ? " · " + r.variant : "");
    const c = chart("rates-chart", {
      type: "bar",
      data: {
        labels: rows.map(label),
        datasets: [
          { label: "95% interval", data: rows.map((r) => [r.reply_rate_low, r.reply_rate_high]),
            backgroundColor: rows.map((r) => (r.leader && r.leader === r.variant ? "rgba(22,163,74,.35)" : "rgba(37,99,235,.25)")),
            borderColor: rows.map((r) => (r.leader && r.leader === r.variant ? "#16a34a" : "#2563eb")),
            borderWidth: 1, barPercentage: 0.5, borderSkipped: false },
          { label: "reply rate", type: "line", data: rows.map((r) => r.reply_rate), showLine: false,
            pointStyle: "rectRot", pointRadius: 6, borderColor: "#111827", backgroundColor: "#111827" },
        ],
      },
      options: {
        indexAxis: "y",
        plugins: { tooltip: { callbacks: { label: (ctx) => {
          const r = rows[ctx.dataIndex];
          return ctx.datasetIndex === 0 ? "95% interval " + pct(r.reply_rate_low) + " – " + pct(r.reply_rate_high)
            : "reply rate " + pct(r.reply_rate) + " (" + r.replied + " of " + r.sent + ")"; } } } },
        scales: { x: { min: 0, title: { display: true, text: "reply rate" }, ticks: { callback: (v) => pct(v, 0) } } },
      },
    }, rows.some((r) => r.sent > 0), 60 + rows.length * 34);
    if (c) c.canvas.dataset.rows = rows.length;
    fill("cadences-table", rows.length ? table(rows, [
      { label: "cadence", value: (r) => r.cadence },
      { label: "step", value: (r) => r.step },
      { label: "variant", value: (r) => r.variant || "–" },
      { label: "sent", key: "sent", num: true, value: (r) => num(r.sent) },
      { label: "delivered", num: true, value: (r) => num(r.delivered) },
      { label: "opened", num: true, title: "shown, never used to decide (Apple Mail Privacy Protection)", cls: () => "muted", value: (r) => num(r.opened) },
      { label: "clicked", num: true, value: (r) => num(r.clicked) },
      { label: "replied", key: "replied", num: true, value: (r) => num(r.replied) },
      { label: "meetings", num: true, value: (r) => num(r.meetings) },
      { label: "bounced", num: true, value: (r) => num(r.bounced) },
      { label: "opted out", num: true, value: (r) => num(r.opted_out) },
      { label: "reply rate (95% interval)", key: "reply_rate", num: true,
        value: (r) => pct(r.reply_rate) + " (" + pct(r.reply_rate_low) + "–" + pct(r.reply_rate_high) + ")" },
      { label: "P(best)", num: true, title: "the leader's probability of having the highest true rate",
        value: (r) => (r.prob_best === null || r.leader !== r.variant ? "–" : pct(r.prob_best)) },
      { label: "decision", key: "decision", value: (r) => {
        if (!r.decision) return "–";
        if (r.decision === "not enough data") return badge(r.decision + (r.leader ? " (" + r.leader + " leads)" : ""), "wait");
        return badge(r.decision, r.leader === r.variant ? "win" : "lose");
      } },
    ], { rowAttrs: (r) => ({ dataStep: r.step, dataVariant: r.variant || "" }) }) : empty());
  }

  // -- team -----------------------------------------------------------------------------
  function team(d) {
    const w = d.workload;
    chart("workload-chart", {
      type: "bar",
      data: { labels: w.map((r) => r.owner), datasets: [
        { label: "open tasks", data: w.map((r) => r.open_tasks - r.overdue_tasks), backgroundColor: "#93c5fd", stack: "t" },
        { label: "overdue", data: w.map((r) => r.overdue_tasks), backgroundColor: "#ef4444", stack: "t" },
        { label: "emails today", data: w.map((r) => r.touches_today), backgroundColor: "#16a34a", stack: "s" },
      ] },
      options: { indexAxis: "y", scales: { x: { beginAtZero: true, stacked: true, ticks: { precision: 0 } }, y: { stacked: true } } },
    }, w.some((r) => r.open_tasks || r.touches_today), 70 + w.length * 40);
    const use = (a, b) => (b ? num(a) + " / " + num(b) : num(a));
    fill("workload-table", w.length ? table(w, [
      { label: "owner", value: (r) => r.owner },
      { label: "role", value: (r) => r.role || "–" },
      { label: "open tasks", key: "open_tasks", num: true, value: (r) => num(r.open_tasks) },
      { label: "overdue", key: "overdue_tasks", num: true, value: (r) => num(r.overdue_tasks), cls: (r) => (r.overdue_tasks ? "bad" : "") },
      { label: "emails today / mailbox cap", num: true, value: (r) => use(r.touches_today, r.mailbox_daily_cap),
        cls: (r) => (r.mailbox_daily_cap && r.touches_today >= r.mailbox_daily_cap ? "bad" : "") },
      { label: "mailbox", value: (r) => r.mailbox },
      { label: "leads today / capacity", num: true, value: (r) => use(r.leads_assigned_today, r.daily_capacity),
        cls: (r) => (r.daily_capacity && r.leads_assigned_today >= r.daily_capacity ? "bad" : "") },
    ], { rowAttrs: (r) => ({ dataOwner: r.owner }) }) : empty());
    const s = d.speed_to_lead;
    chart("speed-chart", {
      type: "bar",
      data: { labels: s.map((r) => r.ae + " · " + r.source), datasets: [
        { label: "median minutes", data: s.map((r) => r.median_minutes), backgroundColor: "#60a5fa" },
        { label: "p90 minutes", data: s.map((r) => r.p90_minutes), backgroundColor: "#1d4ed8" },
      ] },
      options: { indexAxis: "y", scales: { x: { beginAtZero: true, title: { display: true, text: "minutes from lead to first AE touch" } } } },
    }, s.some((r) => r.median_minutes !== null), 70 + s.length * 40);
    fill("speed-table", s.length ? table(s, [
      { label: "source", value: (r) => r.source },
      { label: "AE", value: (r) => r.ae },
      { label: "leads", num: true, value: (r) => num(r.leads) },
      { label: "touched", num: true, value: (r) => num(r.touched) },
      { label: "median", num: true, value: (r) => mins(r.median_minutes) },
      { label: "p90", num: true, value: (r) => mins(r.p90_minutes) },
      { label: "SLA misses", num: true, value: (r) => num(r.sla_misses), cls: (r) => (r.sla_misses ? "bad" : "") },
      { label: "rerouted", num: true, value: (r) => num(r.rerouted) },
    ]) : empty("No routed leads in this period."));
  }

  // -- deliverability -------------------------------------------------------------------
  function deliverability(d) {
    const boxes = d.rows.filter((r) => r.domain === "*");
    const line = (value, text, color) => ({ label: text, type: "line", data: boxes.map(() => value),
      borderColor: color, borderDash: [6, 4], pointRadius: 0, borderWidth: 2, fill: false });
    chart("bounce-chart", {
      type: "bar",
      data: { labels: boxes.map((r) => r.mailbox), datasets: [
        { label: "bounce rate", data: boxes.map((r) => r.bounce_rate || 0),
          backgroundColor: boxes.map((r) => (r.bounce_shield === "over" ? "#ef4444" : "#60a5fa")) },
        line(d.bounce_shield.threshold, "bounce shield " + pct(d.bounce_shield.threshold), "#b91c1c"),
      ] },
      options: { scales: { y: { beginAtZero: true, ticks: { callback: (v) => pct(v, 1) } } } },
    }, boxes.some((r) => r.sent > 0));
    chart("spam-chart", {
      type: "bar",
      data: { labels: boxes.map((r) => r.mailbox), datasets: [
        { label: "spam-complaint rate", data: boxes.map((r) => r.spam_rate || 0),
          backgroundColor: boxes.map((r) => (r.spam !== "ok" ? "#ef4444" : "#a78bfa")) },
        line(d.spam_threshold, "spam threshold " + pct(d.spam_threshold), "#b91c1c"),
      ] },
      options: { scales: { y: { beginAtZero: true, ticks: { callback: (v) => pct(v, 2) } } } },
    }, boxes.some((r) => r.sent > 0));
    fill("deliverability-table", d.rows.length ? table(d.rows, [
      { label: "mailbox", value: (r) => (r.domain === "*" ? r.mailbox : "") },
      { label: "recipient domain", value: (r) => (r.domain === "*" ? "all" : r.domain) },
      { label: "sent", num: true, key: "sent", value: (r) => num(r.sent) },
      { label: "delivered", num: true, value: (r) => num(r.delivered) },
      { label: "bounced", num: true, value: (r) => num(r.bounced) },
      { label: "bounce rate", num: true, value: (r) => pct(r.bounce_rate, 2) },
      { label: "shield", value: (r) => badge(r.bounce_shield, r.bounce_shield === "ok" ? "win" : r.bounce_shield === "over" ? "lose" : "wait") },
      { label: "spam", num: true, value: (r) => num(r.spam_reported) },
      { label: "spam rate", num: true, value: (r) => pct(r.spam_rate, 2) },
      { label: "vs " + pct(d.spam_threshold), value: (r) => badge(r.spam, r.spam === "ok" ? "win" : "lose") },
    ], { rowAttrs: (r) => ({ class: r.domain === "*" ? "group" : "sub", dataMailbox: r.mailbox, dataDomain: r.domain }) }) : empty());
  }

  // -- accounts -------------------------------------------------------------------------
  function accounts(d) {
    const deals = d.deals;
    const note = document.getElementById("accounts-note");
    if (note) note.textContent = d.configured ? "" : "No config/pipeline.yaml: the committee's roles and weights are not set.";
    // The counts are over every open deal the viewer may see; the rows are one page of them.
    const avg = d.average_coverage;
    const range = document.getElementById("accounts-range");
    if (range) range.textContent = deals.length ? (d.page.offset + 1) + "–" + (d.page.offset + deals.length) + " of " + num(d.total) : "none here, " + num(d.total) + " in all";
    fill("accounts-stats", el("div", { class: "stats" }, [
      el("div", { class: "stat" }, [el("div", { class: "stat-label", text: "open deals" }), el("div", { class: "stat-value", dataStat: "deals", text: num(d.total) })]),
      el("div", { class: "stat" }, [el("div", { class: "stat-label", text: "single-threaded" }), el("div", { class: "stat-value" + (d.single_threaded ? " bad" : ""), dataStat: "single", text: num(d.single_threaded) })]),
      el("div", { class: "stat" }, [el("div", { class: "stat-label", text: "average committee coverage" }), el("div", { class: "stat-value", text: pct(avg, 0) })]),
    ]));
    const top = deals.slice().sort((a, b) => a.coverage - b.coverage).slice(0, 25);
    chart("coverage-chart", {
      type: "bar",
      data: { labels: top.map((r) => r.account + " · " + (r.name || r.deal_id)), datasets: [
        { label: "committee coverage", data: top.map((r) => r.coverage),
          backgroundColor: top.map((r) => (r.single_threaded ? "#ef4444" : r.coverage >= 0.7 ? "#16a34a" : "#f59e0b")) },
      ] },
      options: { indexAxis: "y", plugins: { legend: { display: false } },
        scales: { x: { min: 0, max: 1, ticks: { callback: (v) => pct(v, 0) } } } },
    }, top.length > 0, 60 + top.length * 26);
    const bar = (v) => el("span", { class: "meter", title: pct(v, 0) }, [
      el("span", { class: "track" }, [el("span", { class: "fill", style: "width:" + Math.round(v * 100) + "%" })]),
      el("em", { text: pct(v, 0) })]);
    fill("accounts-table", deals.length ? table(deals, [
      { label: "account", value: (r) => r.account || "–" },
      { label: "deal", value: (r) => r.name || r.deal_id },
      { label: "owner", value: (r) => r.owner || "–" },
      { label: "stage", value: (r) => r.stage },
      { label: "amount", num: true, value: (r) => money(r.amount, r.currency) },
      { label: "coverage", value: (r) => bar(r.coverage) },
      { label: "people", num: true, value: (r) => num(r.people) },
      { label: "missing roles", value: (r) => r.missing.join(", ").replace(/_/g, " ") || "–" },
      { label: "", key: "single", value: (r) => (r.single_threaded ? badge("single-threaded", "lose") : "") },
      { label: "days since economic buyer touched", num: true, value: (r) => (r.days_since_economic_buyer_touch === null ? "never" : num(r.days_since_economic_buyer_touch)) },
    ], { rowAttrs: (r) => ({ dataDeal: r.deal_id }) }) : empty("No open deals for these filters."));
  }

  // -- pipeline & forecast --------------------------------------------------------------
  function pipeline(d) {
    const err = document.getElementById("forecast-error");
    err.hidden = !(d.error || !d.configured);
    err.textContent = d.error || (d.configured ? "" : "No config/pipeline.yaml: no stages, no forecast.");
    if (d.report) {
      document.getElementById("report-card").hidden = false;
      const cols = d.report.columns;
      fill("pipeline-report", table(d.report.rows, cols.map((c) => ({ label: c, key: c,
        num: d.report.rows.length && typeof d.report.rows[0][c] === "number",
        value: (r) => (typeof r[c] === "number" ? num(r[c]) : r[c] === null ? "–" : String(r[c])) }))));
    }
    const f = d.forecast;
    const cur = f ? f.currency : "";
    const per = f ? f.periods : [];
    // The stored forecast's state (docs/forecast.md): never show a stale one as fresh.
    const st = d.forecast_status;
    let meta = f ? "as of " + f.as_of.slice(0, 10) + " · " + cur + " · " + f.draws + " draws" : "";
    if (st && st.state === "stale") meta = "STALE: as of " + st.as_of.slice(0, 16).replace("T", " ") + " UTC, computed " + st.computed_at.slice(0, 16).replace("T", " ") + " UTC (" + st.reason + ") · " + cur;
    if (st && st.state === "computing") meta = "computing the forecast: it appears here when ready";
    const metaEl = document.getElementById("forecast-meta");
    metaEl.textContent = meta;
    metaEl.dataset.state = st ? st.state : "";
    chart("forecast-chart", {
      type: "bar",
      data: { labels: per.map((p) => p.period), datasets: [
        { label: "P10-P90", data: per.map((p) => [p.p10, p.p90]), backgroundColor: "rgba(37,99,235,.25)", borderColor: "#2563eb", borderWidth: 1, borderSkipped: false },
        { label: "expected", type: "line", data: per.map((p) => p.expected), showLine: false, pointStyle: "rectRot", pointRadius: 7, backgroundColor: "#111827", borderColor: "#111827" },
        { label: "won to date", data: per.map((p) => p.won_to_date), backgroundColor: "#16a34a" },
        { label: "weighted pipeline", type: "line", data: per.map((p) => p.weighted_pipeline), showLine: false, pointStyle: "line", pointRadius: 14, borderWidth: 3, borderColor: "#f59e0b" },
        { label: "commit", type: "line", data: per.map((p) => p.commit), showLine: false, pointStyle: "line", pointRadius: 14, borderWidth: 3, borderColor: "#a855f7" },
      ] },
      options: { scales: { y: { beginAtZero: true, ticks: { callback: (v) => money(v) } } } },
    }, per.length > 0);
    fill("forecast-table", per.length ? table(per, [
      { label: "period", value: (r) => r.period },
      { label: "won to date", num: true, value: (r) => money(r.won_to_date) },
      { label: "expected", key: "expected", num: true, value: (r) => money(r.expected) },
      { label: "P10 – P90", num: true, value: (r) => money(r.p10) + " – " + money(r.p90) },
      { label: "weighted", num: true, value: (r) => money(r.weighted_pipeline) },
      { label: "commit", num: true, value: (r) => money(r.commit) },
      { label: "best case", num: true, value: (r) => money(r.best_case) },
    ], { rowAttrs: (r) => ({ dataPeriod: r.period }) }) : empty("No deals to forecast."));
    const b = d.backtest;
    const bp = b ? b.periods : [];
    document.getElementById("backtest-meta").textContent = bp.length ? bp[0].period + " to " + bp[bp.length - 1].period + ", each forecast as of its first day" : "";
    const pctv = (v) => (v === null || v === undefined ? "–" : v.toFixed(1) + "%");
    fill("backtest-stats", b && bp.length ? el("div", { class: "stats" }, [
      ["touchflow MAPE", pctv(b.mape.touchflow), "touchflow"], ["naive (stage-weighted) MAPE", pctv(b.mape.naive), "naive"],
      ["commit MAPE", pctv(b.mape.commit), "commit"],
      ["actual within P10-P90", b.interval_coverage === null ? "–" : Math.round(b.interval_coverage * 100) + "% of " + bp.length, "coverage"],
    ].map(([l, v, k]) => el("div", { class: "stat" }, [el("div", { class: "stat-label", text: l }), el("div", { class: "stat-value", dataMape: k, text: v })]))) : empty("No complete period to backtest yet."));
    chart("backtest-chart", {
      type: "bar",
      data: { labels: bp.map((p) => p.period), datasets: [
        { label: "touchflow P10-P90", data: bp.map((p) => [p.touchflow.p10, p.touchflow.p90]), backgroundColor: "rgba(37,99,235,.22)", borderColor: "#2563eb", borderWidth: 1, borderSkipped: false },
        { label: "actual", type: "line", data: bp.map((p) => p.actual), borderColor: "#111827", backgroundColor: "#111827", pointRadius: 4 },
        { label: "touchflow expected", type: "line", data: bp.map((p) => p.touchflow.expected), borderColor: "#2563eb", borderDash: [4, 3], pointRadius: 3 },
        { label: "naive", type: "line", data: bp.map((p) => p.naive), borderColor: "#f59e0b", pointRadius: 3 },
        { label: "commit", type: "line", data: bp.map((p) => p.commit), borderColor: "#a855f7", pointRadius: 3 },
      ] },
      options: { scales: { y: { beginAtZero: true, ticks: { callback: (v) => money(v) } } } },
    }, bp.length > 0);
    fill("backtest-table", bp.length ? table(bp, [
      { label: "period", value: (r) => r.period },
      { label: "actual", num: true, value: (r) => money(r.actual) },
      { label: "touchflow expected", num: true, value: (r) => money(r.touchflow.expected) },
      { label: "P10 – P90", num: true, value: (r) => money(r.touchflow.p10) + " – " + money(r.touchflow.p90) },
      { label: "inside", value: (r) => (r.touchflow.p10 <= r.actual && r.actual <= r.touchflow.p90 ? badge("yes", "win") : badge("no", "lose")) },
      { label: "naive", num: true, value: (r) => money(r.naive) },
      { label: "commit", num: true, value: (r) => money(r.commit) },
    ]) : el("span"));
    const deals = f ? f.deals : [];
    const label0 = per.length ? per[0].period : "";
    fill("forecast-deals", deals.length ? table(deals, [
      { label: "deal", value: (r) => r.deal_id },
      { label: "account", value: (r) => r.account_domain || "–" },
      { label: "owner", value: (r) => r.owner_email || "–" },
      { label: "stage", value: (r) => r.stage },
      { label: "amount", num: true, value: (r) => money(r.amount, cur) },
      { label: "P(close in " + label0 + ")", num: true, value: (r) => pct(r.probabilities[label0], 0) },
      { label: "P(won ever)", num: true, value: (r) => pct(r.win_probability, 0) },
      { label: "why", cls: () => "wrap", value: (r) => el("span", { class: "small muted", text: r.reasons.join("; ") }) },
    ]) : empty("No open deals."));
  }

  const RENDER = { overview, cadences, team, deliverability, accounts, pipeline };

  // Draw page `name` from the embedded data, then again after each batch of live activity.
  tf.reportPage = function (name, dataId, owner, live) {
    let data = JSON.parse(document.getElementById(dataId).textContent);
    RENDER[name](data);
    document.body.dataset.loaded = "1";
    let timer = null;
    const refetch = () => {
      timer = null;
      fetch("/api/dashboard/" + name + window.location.search, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then((r) => (r.ok ? r.json() : Promise.reject(r.status)))
        .then((fresh) => { data = fresh; RENDER[name](data); document.body.dataset.refreshed = String(Number(document.body.dataset.refreshed || 0) + 1); })
        .catch(() => {});
    };
    const schedule = () => { if (!timer) timer = setTimeout(refetch, 300); };  // one fetch per burst
    // A forecast still computing (or stale while the new one is): ask again in 10 s, one
    // stored-row read per ask, until it is fresh.
    const pending = () => data.forecast_status && data.forecast_status.state !== "fresh";
    const poll = () => { if (pending()) setTimeout(() => { refetch(); setTimeout(poll, 500); }, 10000); };
    poll();
    if (live !== false) {
      const state = document.getElementById("live-state");
      tf.subscribe(["activity"], { activity: schedule, deal: schedule }, owner, (on) => {
        if (state) { state.classList.toggle("on", on); state.title = on ? "live" : "reconnecting"; }
      });
    }
    return schedule;
  };
})();
