// The dashboard's shared browser code: charts (vendored Chart.js) and the live feed (SSE).
// No framework, no CDN: served by `touchflow serve` from /static.
(function () {
  "use strict";
  const touchflow = {};

  // A bar+line chart of touches sent and replies per day: {days, sent, replies}.
  touchflow.dailyChart = function (canvasId, series) {
    const canvas = document.getElementById(canvasId);
    if (!canvas || typeof Chart === "undefined") return null;
    return new Chart(canvas, {
      type: "bar",
      data: {
        labels: series.days.map((d) => d.slice(5)),
        datasets: [
          { label: "touches sent", data: series.sent, backgroundColor: "#93c5fd", yAxisID: "y" },
          { label: "replies", data: series.replies, type: "line", borderColor: "#16a34a",
            backgroundColor: "#16a34a", yAxisID: "y1" },
        ],
      },
      options: {
        maintainAspectRatio: false,
        animation: false,
        interaction: { mode: "index", intersect: false },
        scales: {
          y: { beginAtZero: true, title: { display: true, text: "sent" }, ticks: { precision: 0 } },
          y1: { beginAtZero: true, position: "right", grid: { drawOnChartArea: false },
                title: { display: true, text: "replies" }, ticks: { precision: 0 } },
        },
      },
    });
  };

  // Subscribe to server-sent events of `topics`; the browser reconnects by itself and
  // sends Last-Event-ID, so the server replays what was missed.
  touchflow.subscribe = function (topics, handlers, owner, onState) {
    const params = new URLSearchParams();
    topics.forEach((t) => params.append("topic", t));
    if (owner) params.set("owner", owner);
    const source = new EventSource("/live/stream?" + params.toString());
    source.onopen = () => onState && onState(true);
    source.onerror = () => onState && onState(false);
    Object.entries(handlers).forEach(([kind, fn]) =>
      source.addEventListener(kind, (ev) => fn(JSON.parse(ev.data), ev)));
    return source;
  };

  function text(tag, value, cls) {
    const el = document.createElement(tag);
    el.textContent = value;
    if (cls) el.className = cls;
    return el;
  }

  touchflow.activityItem = function (a) {
    const li = document.createElement("li");
    li.dataset.id = a.id;
    li.className = "kind-" + a.kind + " fresh";
    li.appendChild(text("strong", a.name || a.email || "someone"));
    if (a.company) li.appendChild(text("span", " (" + a.company + ")", "muted"));
    li.appendChild(text("span", a.label, "label"));
    const meta = [a.at.slice(0, 16).replace("T", " ") + " UTC"];
    if (a.cadence) meta.push(a.cadence);
    if (a.owner) meta.push(a.owner);
    li.appendChild(text("div", meta.join(" · "), "meta"));
    return li;
  };

  // A reply that arrives live is counted on its day in a daily chart (if the day is shown).
  touchflow.countReply = function (chart, a) {
    if (!chart || (a.kind !== "replied" && a.kind !== "sms_reply")) return;
    const i = chart.data.labels.indexOf(a.at.slice(5, 10));
    if (i < 0) return;
    chart.data.datasets[1].data[i] += 1;
    chart.update();
    const total = document.querySelector('[data-total="replies"]');
    if (total) total.textContent = String(Number(total.textContent) + 1);
  };

  touchflow.activityFeed = function (listId, stateId, owner, onActivity) {
    const list = document.getElementById(listId);
    const state = document.getElementById(stateId);
    const add = (a, key) => {
      if (list.querySelector('[data-id="' + key + '"]')) return false;
      const empty = list.querySelector(".empty");
      if (empty) empty.remove();
      const li = touchflow.activityItem(a);
      li.dataset.id = key;
      list.prepend(li);
      return true;
    };
    return touchflow.subscribe(["activity"], {
      activity: (a) => { if (add(a, a.id) && onActivity) onActivity(a); },
      // A deal moving to a stage: "Acme expansion (acme.com) moved to negotiation".
      deal: (d) => {
        const item = { kind: d.kind, label: d.label, at: d.at, owner: d.owner, cadence: null,
          name: d.name || d.deal_id, company: d.account, email: null };
        if (add(item, "deal-" + d.id) && onActivity) onActivity(item);
      },
    }, owner, (on) => {
      state.classList.toggle("on", on);
      state.title = on ? "live" : "reconnecting";
    });
  };

  window.touchflow = touchflow;
})();
