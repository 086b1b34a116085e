// Keeps the server-rendered dashboard live: listens to dashboard/events (server-sent events) and
// re-renders the backends and recent requests with the same markup as nexus/dashboard/page.py.
// Every value is set with textContent, never innerHTML: names, models and errors come from
// backends, clients and the configuration. A model quality ejected counts its seconds down here
// (every second, without a new event) and reads "recovering" once they have run out.
(function () {
  "use strict";

  var DASH = "\u2013";

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (name) {
      node.setAttribute(name, attrs[name]);
    });
    if (text !== undefined) node.textContent = String(text);
    return node;
  }

  function latencyText(ms) {
    return ms === null || ms === undefined ? DASH : ms.toFixed(1) + " ms";
  }

  function durationText(ms) {
    return ms < 1000 ? ms.toFixed(0) + " ms" : (ms / 1000).toFixed(2) + " s";
  }

  function statusText(entry) {
    var text = String(entry.status);
    if (entry.stream) text += " stream" + (entry.stream_broken ? " broken" : "");
    return text;
  }

  // "m ejected, back in 25 s: <reason>" or "m recovering: <reason>" (page.py quality_text).
  function qualityText(model, status, back, reason) {
    var text = status === "ejected"
      ? model + " ejected" + (back === null || back === undefined ? "" : ", back in " + back + " s")
      : model + " recovering";
    return reason ? text + ": " + reason : text;
  }

  function qualityList(quality) {
    var models = Object.keys(quality || {}).sort().filter(function (m) {
      return quality[m].status === "ejected" || quality[m].status === "recovering";
    });
    if (models.length === 0) return null;
    var list = el("ul", { "class": "quality" });
    var now = Date.now();
    models.forEach(function (m) {
      var q = quality[m];
      var item = el("li", { "class": "quality-" + q.status, "data-model": m },
        qualityText(m, q.status, q.back_in_seconds, q.reason));
      if (q.status === "ejected" && typeof q.back_in_seconds === "number") {
        item.dataset.until = String(now + q.back_in_seconds * 1000);
        item.dataset.reason = q.reason || "";
      }
      list.append(item);
    });
    return list;
  }

  // Once a second: the seconds left of every ejection shown, "recovering" once none are left.
  function countDown() {
    var now = Date.now();
    document.querySelectorAll(".quality li[data-until]").forEach(function (item) {
      var left = Math.ceil((Number(item.dataset.until) - now) / 1000);
      var model = item.dataset.model, reason = item.dataset.reason;
      if (left > 0) {
        item.textContent = qualityText(model, "ejected", left, reason);
      } else {
        item.className = "quality-recovering";
        item.removeAttribute("data-until");
        item.textContent = qualityText(model, "recovering", null, reason);
      }
    });
  }

  function summaryText(data) {
    var healthy = data.backends.filter(function (b) { return b.status === "healthy"; }).length;
    var t = data.totals;
    var waiting = data.queue.enabled ? "; " + data.queue.waiting + " waiting in the queue" : "";
    return t.requests + " requests, " + t.success + " ok, " + t.errors + " errors; " +
      healthy + " of " + data.backends.length + " backends healthy" + waiting;
  }

  function backendCard(b) {
    var status = String(b.status);
    var card = el("li", { "class": "backend status-" + status, "data-backend": b.name });
    var head = el("div", { "class": "head" });
    head.append(el("span", { "class": "name" }, b.name), el("span", { "class": "badge" }, status));
    var facts = [
      ["Zone", b.zone],
      ["Tier", b.tier],
      ["Type", b.type + " (" + b.location + ")"],
      ["In flight", b.in_flight + (b.max_concurrent === null ? "" : " / " + b.max_concurrent)],
      ["Latency", latencyText(b.latency_ms)],
    ];
    var dl = el("dl");
    facts.forEach(function (fact) {
      var row = el("div");
      row.append(el("dt", {}, fact[0]), el("dd", {}, fact[1]));
      dl.append(row);
    });
    card.append(head, dl);
    if (b.models.length === 0) {
      card.append(el("p", { "class": "models none" }, "No models"));
    } else {
      var list = el("ul", { "class": "models" });
      b.models.forEach(function (m) { list.append(el("li", {}, m)); });
      card.append(list);
    }
    var quality = qualityList(b.quality);
    if (quality) card.append(quality);
    if (b.last_error && status !== "healthy") card.append(el("p", { "class": "error" }, b.last_error));
    return card;
  }

  function requestRow(r) {
    var row = el("tr", { "data-request-id": r.request_id });
    var cells = [
      ["Time", r.time.slice(11, 19), ""],
      ["Model", r.model, "model"],
      ["API", r.endpoint || DASH, ""],
      ["Client", r.tenant || DASH, ""],
      ["Backend", r.backend || "none", ""],
      ["Status", statusText(r), "status-" + Math.floor(r.status / 100) + "xx"],
      ["Duration", durationText(r.duration_ms), ""],
      ["Route reason", r.route_reason || DASH, ""],
    ];
    cells.forEach(function (c) {
      var attrs = { "data-label": c[0] };
      if (c[2]) attrs["class"] = c[2];
      row.append(el("td", attrs, c[1]));
    });
    return row;
  }

  function empty(tag, text, colspan) {
    var node = el(tag, { "class": "empty" });
    if (colspan) node.append(el("td", { colspan: String(colspan) }, text));
    else node.textContent = text;
    return node;
  }

  function render(data) {
    document.getElementById("summary").textContent = summaryText(data);
    var backends = data.backends.map(backendCard);
    document.getElementById("backends").replaceChildren.apply(
      document.getElementById("backends"),
      backends.length ? backends : [empty("li", "No backends configured or discovered.")]
    );
    var rows = data.requests.map(requestRow);
    document.getElementById("requests").replaceChildren.apply(
      document.getElementById("requests"),
      rows.length ? rows : [empty("tr", "No requests yet.", 8)]
    );
  }

  function setLive(state, text) {
    var live = document.getElementById("live");
    live.dataset.state = state;
    live.textContent = text;
  }

  function connect() {
    if (!window.EventSource) return;
    var source = new EventSource("dashboard/events");
    source.addEventListener("state", function (event) {
      render(JSON.parse(event.data));
      setLive("live", "live");
    });
    source.onerror = function () {
      if (source.readyState === EventSource.CLOSED) {
        setLive("offline", "offline, retrying");
        setTimeout(connect, 5000);
      } else {
        setLive("offline", "reconnecting");
      }
    };
  }

  connect();
  setInterval(countDown, 1000);
})();
