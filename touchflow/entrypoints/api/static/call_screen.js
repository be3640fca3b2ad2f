// The live call screen: transcript by speaker, cards popping in, the checklist ticking.
// State comes rendered in the page (the same as GET /api/calls/{sid}/guidance), then
// live over SSE (topic call:<sid>); after every (re)connect the JSON is read again and
// merged, so nothing fired between the render and the subscription is missed.
// Card bodies arrive as HTML the server made from the card's Markdown (escaped first).
(function () {
  "use strict";
  const touchflow = window.touchflow;

  touchflow.callScreen = function (callSid, topic, state) {
    const transcript = document.getElementById("transcript");
    const cards = document.getElementById("cards");
    const checklist = document.getElementById("checklist");
    const status = document.getElementById("call-status");
    const liveState = document.getElementById("live-state");
    const seenCards = new Set();

    function el(tag, cls, text) {
      const e = document.createElement(tag);
      if (cls) e.className = cls;
      if (text !== undefined) e.textContent = text;
      return e;
    }

    function segment(s) {
      const id = "seg-" + s.track + "-" + s.seq;
      let li = document.getElementById(id);
      if (li && li.dataset.final === "true" && !s.final) return; // a late partial
      if (!li) {
        li = el("li");
        li.id = id;
        transcript.appendChild(li);
      }
      li.className = "said-by-" + s.said_by + (s.final ? "" : " provisional");
      li.dataset.final = String(s.final);
      li.dataset.seq = String(s.seq);
      li.replaceChildren(
        el("span", "speaker", s.said_by === "rep" ? "Rep" : "Prospect"),
        el("span", "words", s.text),
        s.final ? el("span", "tag-final") : el("em", "tag-provisional", "provisional"));
      transcript.scrollTop = transcript.scrollHeight;
    }

    function cardKey(c) {
      return [c.tracker, c.at, c.said_by, c.text].join("|");
    }

    function card(c) {
      const key = cardKey(c);
      if (seenCards.has(key)) return;
      seenCards.add(key);
      const li = el("li", "guidance-card fresh");
      li.dataset.tracker = c.tracker;
      li.dataset.card = c.card;
      li.appendChild(el("h3", "", c.title));
      if (c.text) li.appendChild(el("blockquote", "heard", "“" + c.text + "” — " + c.said_by));
      else li.appendChild(el("p", "heard muted", "not heard in time (" + c.said_by + ")"));
      if (c.html) {
        const body = el("div", "body");
        body.innerHTML = c.html; // made safe by the server (markdown.py escapes first)
        li.appendChild(body);
      }
      if (c.links && c.links.length) {
        const ul = el("ul", "links");
        c.links.forEach((l) => {
          if (!/^https?:\/\//.test(l.url)) return;
          const a = el("a", "", l.label);
          a.href = l.url;
          a.target = "_blank";
          a.rel = "noopener noreferrer";
          const item = el("li");
          item.appendChild(a);
          ul.appendChild(item);
        });
        li.appendChild(ul);
      }
      cards.appendChild(li);
      li.scrollIntoView({ block: "nearest" });
      setTimeout(() => li.classList.remove("fresh"), 1500);
    }

    function tick(item, checked) {
      const li = checklist.querySelector('[data-item="' + CSS.escape(item) + '"]');
      if (!li || !checked) return;
      li.classList.add("checked");
      li.querySelector(".box").textContent = "✔";
    }

    function ended() {
      status.textContent = "ended";
      status.className = "call-status status-ended";
    }

    function apply(s) {
      s.segments.forEach(segment);
      s.cards.forEach(card);
      Object.entries(s.checklist).forEach(([item, checked]) => tick(item, checked));
      if (s.status === "ended") ended();
    }

    apply(state);
    touchflow.subscribe([topic], {
      transcript: segment,
      card: card,
      checklist: (c) => tick(c.item, c.checked),
      ended: ended,
    }, null, (ok) => {
      liveState.className = "live-dot " + (ok ? "on" : "off");
      liveState.title = ok ? "live" : "reconnecting";
      if (ok) {
        fetch("/api/calls/" + encodeURIComponent(callSid) + "/guidance",
              { credentials: "same-origin", headers: { Accept: "application/json" } })
          .then((r) => (r.ok ? r.json() : null))
          .then((s) => s && apply(s))
          .catch(() => {});
      }
    });
  };
})();
