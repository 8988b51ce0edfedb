// The openrr inspector page: live plots, the server log, the scene and the timing capture.
//
// Auth: the page is opened as http://host:inspectorPort/#token=<access token>. The token is moved from
// the address bar into sessionStorage (this tab only) and sent as "Authorization: Bearer" on every data
// request; without one (or when it is refused) the page asks for it.
"use strict";

(function () {
  const TOKEN_KEY = "openrr.inspector.token";
  const MAX_POINTS = 600; // ten minutes of one-second samples, as the server keeps
  const HISTORY_MS = 1000;
  const LOG_MS = 2000;
  const SCENE_MS = 3000;
  const LOG_LIMIT = 200;

  const $ = (id) => document.getElementById(id);

  class AuthError extends Error {}

  // ---- the token ---------------------------------------------------------------------------------------

  function takeTokenFromAddress() {
    const fragment = new URLSearchParams(location.hash.replace(/^#/, ""));
    const token = fragment.get("token");
    if (token === null) return;
    if (token.trim()) sessionStorage.setItem(TOKEN_KEY, token.trim());
    fragment.delete("token");
    const rest = fragment.toString();
    history.replaceState(null, "", location.pathname + location.search + (rest ? "#" + rest : ""));
  }

  function token() {
    return sessionStorage.getItem(TOKEN_KEY);
  }

  async function api(path) {
    const current = token();
    if (!current) throw new AuthError("");
    const response = await fetch(path, {
      headers: { Authorization: "Bearer " + current },
      cache: "no-store",
      credentials: "omit",
    });
    if (response.status === 401 || response.status === 403) {
      let message = "The access token was refused.";
      try {
        message = (await response.json()).error.message || message;
      } catch (_) {
        /* keep the generic message */
      }
      throw new AuthError(message);
    }
    if (!response.ok) throw new Error(path + " answered " + response.status);
    return response;
  }

  function askForToken(message) {
    stopPolling();
    $("content").hidden = true;
    $("forget-token").hidden = true;
    $("sections").hidden = true;
    $("token-panel").hidden = false;
    $("token-error").textContent = message || "";
    setStatus(message ? "Not authorised" : "Waiting for an access token", false);
    $("token-input").focus();
  }

  function onTokenSubmit(event) {
    event.preventDefault();
    const value = $("token-input").value.trim();
    if (!value) return;
    sessionStorage.setItem(TOKEN_KEY, value);
    $("token-input").value = "";
    start();
  }

  function forgetToken() {
    sessionStorage.removeItem(TOKEN_KEY);
    askForToken("");
  }

  // ---- status line and formatting ----------------------------------------------------------------------

  function setStatus(text, ok) {
    const el = $("status");
    el.textContent = text;
    el.classList.toggle("ok", ok === true);
    el.classList.toggle("bad", ok === false);
  }

  const fmt = (value, digits, unit) =>
    value === null || value === undefined ? "–" : Number(value).toFixed(digits) + (unit ? " " + unit : "");
  const int = (value) => (value === null || value === undefined ? "–" : Number(value).toLocaleString("en-US"));

  function duration(seconds) {
    const s = Math.floor(seconds);
    const h = Math.floor(s / 3600);
    const m = Math.floor((s % 3600) / 60);
    return (h ? h + " h " : "") + (h || m ? m + " min " : "") + (s % 60) + " s";
  }

  function clock(epochSeconds) {
    const d = new Date(epochSeconds * 1000);
    const pad = (n, w) => String(n).padStart(w || 2, "0");
    return pad(d.getHours()) + ":" + pad(d.getMinutes()) + ":" + pad(d.getSeconds()) + "." + pad(d.getMilliseconds(), 3);
  }

  // ---- plots -------------------------------------------------------------------------------------------

  // Each plot: its element id and its traces (label, sample field, scale, second y axis).
  const PLOTS = [
    { id: "plot-frame", y: "ms", traces: [["Frame", "frameMs"], ["Render", "renderMs"], ["Encode", "encodeMs"]] },
    { id: "plot-fps", y: "fps", traces: [["Sent", "fps"]] },
    { id: "plot-bitrate", y: "Mbit/s", traces: [["Sent", "bitrate", 1e-6], ["Target", "targetBitrate", 1e-6]] },
    { id: "plot-cpu", y: "CPU %", y2: "MiB", traces: [["CPU", "cpuPercent"], ["Memory", "rssMiB", 1, true]] },
    { id: "plot-polygons", y: "polygons", traces: [["Scene", "polygons"], ["Drawn", "polygonsDrawn"]] },
  ];
  const COLORS = ["#1f77b4", "#e4572e", "#2ca02c", "#9467bd"];
  let plotsReady = false;
  let lastSampleTime = 0;

  function plotAvailable() {
    return typeof window.Plotly === "object" && window.Plotly !== null;
  }

  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
  }

  function value(sample, field, scale) {
    const v = sample[field];
    return v === null || v === undefined ? null : v * (scale || 1);
  }

  function initPlots(samples) {
    if (!plotAvailable()) {
      $("plots-error").hidden = false;
      return;
    }
    const fg = cssVar("--fg");
    const grid = cssVar("--grid");
    const x = samples.map((s) => new Date(s.t * 1000));
    for (const plot of PLOTS) {
      const traces = plot.traces.map(([name, field, scale, y2], i) => ({
        name,
        x: x.slice(),
        y: samples.map((s) => value(s, field, scale)),
        type: "scatter",
        mode: "lines",
        line: { width: 2, color: COLORS[i % COLORS.length] },
        yaxis: y2 ? "y2" : "y",
        hovertemplate: "%{y:.3~f}<extra>" + name + "</extra>",
      }));
      const layout = {
        margin: { l: 48, r: plot.y2 ? 52 : 12, t: 8, b: 32 },
        paper_bgcolor: "rgba(0,0,0,0)",
        plot_bgcolor: "rgba(0,0,0,0)",
        font: { color: fg, size: 11 },
        showlegend: plot.traces.length > 1,
        legend: { orientation: "h", x: 0, y: 1.12, bgcolor: "rgba(0,0,0,0)" },
        xaxis: { type: "date", gridcolor: grid, tickformat: "%H:%M:%S" },
        yaxis: { title: { text: plot.y }, gridcolor: grid, rangemode: "tozero", zerolinecolor: grid },
        uirevision: plot.id,
      };
      if (plot.y2) {
        layout.yaxis2 = {
          title: { text: plot.y2 },
          overlaying: "y",
          side: "right",
          rangemode: "tozero",
          tickmode: "auto",
          showgrid: false,
        };
      }
      window.Plotly.newPlot(plot.id, traces, layout, {
        responsive: true,
        displaylogo: false,
        // On touch screens the mode bar would cover the legend; pinch and drag still zoom and pan.
        displayModeBar: window.matchMedia("(pointer: coarse)").matches ? false : "hover",
        modeBarButtonsToRemove: ["select2d", "lasso2d", "autoScale2d"],
      });
    }
    plotsReady = true;
  }

  function extendPlots(samples) {
    if (!plotsReady || samples.length === 0) return;
    const x = samples.map((s) => new Date(s.t * 1000));
    for (const plot of PLOTS) {
      const update = { x: [], y: [] };
      plot.traces.forEach(([, field, scale]) => {
        update.x.push(x.slice());
        update.y.push(samples.map((s) => value(s, field, scale)));
      });
      window.Plotly.extendTraces(plot.id, update, plot.traces.map((_, i) => i), MAX_POINTS);
    }
  }

  function updateTiles(latest, status) {
    $("session-id").textContent = status.sessionId;
    $("session-line").hidden = false;
    document.title = "openrr inspector · " + status.sessionId;
    $("tile-client").textContent = status.clientConnected ? "connected" : "none";
    $("tile-uptime").textContent = duration(status.uptimeSeconds);
    const codec = status.codec ? " " + status.codec + (status.encoder ? " (" + status.encoder + ")" : "") : "";
    $("tile-video").textContent = status.width + "×" + status.height + codec;
    const limit = $("limit-warning");
    limit.hidden = !status.limitExceeded;
    limit.textContent = status.limitMessage || "";
    if (!latest) return;
    $("tile-fps").textContent = fmt(latest.fps, 1);
    $("tile-frame").textContent = fmt(latest.frameMs, 1, "ms");
    $("tile-render-encode").textContent = fmt(latest.renderMs, 1) + " / " + fmt(latest.encodeMs, 1, "ms");
    $("tile-bitrate").textContent = fmt(latest.bitrate / 1e6, 2, "Mbit/s");
    $("tile-cpu").textContent = fmt(latest.cpuPercent, 0, "%");
    $("tile-memory").textContent = fmt(latest.rssMiB, 0, "MiB");
    $("tile-polygons").textContent = int(latest.polygons);
  }

  async function pollHistory() {
    const response = await api("history?since=" + lastSampleTime);
    const body = await response.json();
    const samples = body.samples;
    if (!plotsReady) {
      initPlots(samples);
    } else {
      extendPlots(samples);
    }
    if (samples.length) lastSampleTime = samples[samples.length - 1].t;
    updateTiles(samples.length ? samples[samples.length - 1] : null, body.status);
    setStatus(body.status.clientConnected ? "Live · a client is connected" : "Live · no client connected", true);
  }

  // ---- the log -----------------------------------------------------------------------------------------

  let logKey = "";

  async function pollLog() {
    const level = $("log-level").value;
    const response = await api("log?level=" + encodeURIComponent(level) + "&limit=" + LOG_LIMIT);
    const body = await response.json();
    const lines = body.lines;
    const key = level + ":" + lines.length + ":" + (lines.length ? lines[lines.length - 1].seq : 0);
    if (key === logKey) return;
    logKey = key;
    const list = $("log-lines");
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 24;
    const items = lines.map((line) => {
      const li = document.createElement("li");
      li.dataset.level = line.level;
      const parts = [
        ["log-time", clock(line.time)],
        ["log-level " + line.level, line.level],
        ["log-logger", line.logger],
        ["log-message", line.message],
      ];
      for (const [cls, text] of parts) {
        const span = document.createElement("span");
        span.className = cls;
        span.textContent = text; // never innerHTML: log lines carry client-supplied text
        li.append(span);
      }
      return li;
    });
    list.replaceChildren(...items);
    $("log-empty").hidden = lines.length > 0;
    if (atBottom) list.scrollTop = list.scrollHeight;
  }

  function onLevelChange() {
    logKey = "";
    const list = $("log-lines");
    list.replaceChildren();
    pollLog()
      .then(() => {
        list.scrollTop = list.scrollHeight;
      })
      .catch(onError);
  }

  // ---- the scene ---------------------------------------------------------------------------------------

  let sceneRevision = "";

  function nodeLabel(node, modelOf) {
    const frag = document.createDocumentFragment();
    const name = document.createElement("span");
    name.className = "node-name";
    name.textContent = node.name || "(unnamed)";
    frag.append(name);
    const id = document.createElement("span");
    id.className = "node-id";
    id.textContent = "#" + node.id;
    frag.append(id);
    const badges = [];
    if (modelOf.has(node.id)) badges.push(["model", "model " + modelOf.get(node.id)]);
    if (node.mesh) badges.push(["", "mesh"]);
    if (!node.visible) badges.push(["", "hidden"]);
    for (const [cls, text] of badges) {
      const badge = document.createElement("span");
      badge.className = "badge " + cls;
      badge.textContent = text;
      frag.append(badge);
    }
    return frag;
  }

  function renderTree(nodes, modelOf) {
    const children = new Map();
    const roots = [];
    const known = new Set(nodes.map((n) => n.id));
    for (const node of nodes) {
      if (node.parent === null || !known.has(node.parent)) {
        roots.push(node);
      } else {
        if (!children.has(node.parent)) children.set(node.parent, []);
        children.get(node.parent).push(node);
      }
    }
    const build = (list, depth) => {
      const ul = document.createElement("ul");
      for (const node of list) {
        const li = document.createElement("li");
        const kids = children.get(node.id) || [];
        if (kids.length) {
          const details = document.createElement("details");
          details.open = depth < 3;
          const summary = document.createElement("summary");
          summary.append(nodeLabel(node, modelOf));
          details.append(summary, build(kids, depth + 1));
          li.append(details);
        } else {
          const leaf = document.createElement("span");
          leaf.className = "leaf";
          leaf.append(nodeLabel(node, modelOf));
          li.append(leaf);
        }
        ul.append(li);
      }
      return ul;
    };
    return build(roots, 0);
  }

  async function pollScene() {
    const body = await (await api("scene")).json();
    if (body.revision === sceneRevision) return;
    sceneRevision = body.revision;
    const modelOf = new Map();
    const models = body.models.map((model) => {
      for (const root of model.rootNodes) modelOf.set(root, model.modelId);
      const li = document.createElement("li");
      li.textContent = model.modelId + " · " + int(model.nodes) + " nodes · " + int(model.polygons) + " polygons";
      return li;
    });
    $("scene-models").replaceChildren(...models);
    let summary = int(body.nodeCount) + " nodes, " + int(body.polygons) + " polygons";
    if (!body.models.length) summary += " · no models loaded";
    if (body.truncated) summary += " · showing the first " + int(body.nodes.length) + " nodes";
    $("scene-summary").textContent = summary;
    $("scene-tree").replaceChildren(renderTree(body.nodes, modelOf));
  }

  // ---- the timing capture ------------------------------------------------------------------------------

  async function downloadTrace() {
    const button = $("download-trace");
    button.disabled = true;
    $("trace-status").textContent = "Preparing the capture…";
    try {
      const response = await api("trace");
      const disposition = response.headers.get("Content-Disposition") || "";
      const match = /filename="([^"]+)"/.exec(disposition);
      const name = match ? match[1] : "openrr-trace.json";
      const blob = await response.blob();
      const url = URL.createObjectURL(blob);
      const link = document.createElement("a");
      link.href = url;
      link.download = name;
      document.body.append(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
      $("trace-status").textContent = "Saved " + name + " (" + Math.ceil(blob.size / 1024) + " KiB).";
    } catch (error) {
      onError(error);
      $("trace-status").textContent = "The capture could not be downloaded.";
    } finally {
      button.disabled = false;
    }
  }

  // ---- polling -----------------------------------------------------------------------------------------

  const timers = [];

  function onError(error) {
    if (error instanceof AuthError) {
      sessionStorage.removeItem(TOKEN_KEY); // refused or expired: ask again
      askForToken(error.message);
    } else {
      setStatus("Connection problem: " + error.message, false);
    }
  }

  function every(ms, task) {
    let running = false;
    const run = () => {
      if (running || document.hidden) return;
      running = true;
      task()
        .catch(onError)
        .finally(() => {
          running = false;
        });
    };
    run();
    timers.push(setInterval(run, ms));
  }

  function stopPolling() {
    while (timers.length) clearInterval(timers.pop());
  }

  function start() {
    stopPolling();
    if (!token()) {
      askForToken("");
      return;
    }
    $("token-panel").hidden = true;
    $("content").hidden = false;
    $("forget-token").hidden = false;
    $("sections").hidden = false;
    setStatus("Connecting…", null);
    every(HISTORY_MS, pollHistory);
    every(LOG_MS, pollLog);
    every(SCENE_MS, pollScene);
  }

  document.addEventListener("DOMContentLoaded", () => {
    takeTokenFromAddress();
    $("token-form").addEventListener("submit", onTokenSubmit);
    $("forget-token").addEventListener("click", forgetToken);
    $("log-level").addEventListener("change", onLevelChange);
    $("download-trace").addEventListener("click", downloadTrace);
    window.addEventListener("hashchange", () => {
      if (/(^|[#&])token=/.test(location.hash)) {
        takeTokenFromAddress();
        start();
      }
    });
    start();
  });
})();
