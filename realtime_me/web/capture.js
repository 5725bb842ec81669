/* realtime-me capture script: every webcam frame, with its capture time, to this session's pipeline.
 *
 * Gradio's webcam streaming sends ~2 frames a second, mirrored, without capture times; spotting
 * a 1/15 s movement needs every frame and when it was taken. So on each requestVideoFrameCallback
 * the frame is JPEG-encoded and sent on a WebSocket as
 *   <f64 captureTime ms> <f64 mediaTime s> <u32 presentedFrames> <JPEG>   (little-endian)
 * The camera is asked for 640x480 at 30 fps. The preview may be mirrored for the user (CSS only);
 * what is sent never is, because mirroring swaps left and right facial actions.
 * The server answers with status messages, clock pings, the annotated frame (JPEG) and the
 * motion chart's data, which is drawn here on a canvas.
 */
(() => {
  "use strict";
  if (window.rtme) return;

  const WIDTH = 640, HEIGHT = 480, FPS = 30;
  const QUALITY = 0.85;
  const MAX_IN_FLIGHT = 6;            // frames being encoded at once before new ones are skipped
  const MAX_BUFFERED = 4 * 1024 * 1024; // bytes waiting on the socket before new frames are skipped

  const st = {
    running: false, ready: false, ws: null, media: null, video: null, canvas: null, ctx: null,
    handle: null, timer: null, statsTimer: null, chain: Promise.resolve(), inFlight: 0,
    sent: 0, skipped: 0, skippedEncoding: 0, skippedSocket: 0, counter: 0, useMediaTime: null, encodeMs: [], drawing: false,
    annotated: 0, charted: 0, lastStatus: "camera off",
  };

  const $ = (id) => document.getElementById(id);

  function status(text, kind) {
    st.lastStatus = text;
    const el = $("rtme-status");
    if (el) { el.textContent = text; el.dataset.kind = kind || "info"; }
  }

  function socketUrl(token, fps) {
    const base = window.location.href.replace(/[?#].*$/, "").replace(/[^/]*$/, "");
    const u = new URL("rtme/ws", base);
    u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
    u.searchParams.set("token", token);
    u.searchParams.set("fps", String(fps));
    return u.toString();
  }

  function makeCanvas(w, h) {
    if (typeof OffscreenCanvas !== "undefined") return new OffscreenCanvas(w, h);
    const c = document.createElement("canvas");
    c.width = w; c.height = h;
    return c;
  }

  function encode(canvas) {
    // Both calls copy the bitmap synchronously, so the canvas can be redrawn at once.
    if (canvas.convertToBlob) return canvas.convertToBlob({ type: "image/jpeg", quality: QUALITY });
    return new Promise((resolve) => canvas.toBlob(resolve, "image/jpeg", QUALITY));
  }

  function median(a) {
    if (!a.length) return null;
    const s = [...a].sort((x, y) => x - y);
    return Math.round(s[s.length >> 1] * 10) / 10;
  }

  function sendFrame(captureMs, mediaS, presented) {
    const ws = st.ws;
    if (!ws || ws.readyState !== 1) return;
    if (st.inFlight >= MAX_IN_FLIGHT) { st.skipped++; st.skippedEncoding++; return; }
    if (ws.bufferedAmount > MAX_BUFFERED) { st.skipped++; st.skippedSocket++; return; }
    const v = st.video;
    const scale = Math.min(1, WIDTH / (v.videoWidth || WIDTH));
    const w = Math.round((v.videoWidth || WIDTH) * scale), h = Math.round((v.videoHeight || HEIGHT) * scale);
    if (!st.canvas || st.canvas.width !== w || st.canvas.height !== h) {
      st.canvas = makeCanvas(w, h);
      st.ctx = st.canvas.getContext("2d", { alpha: false, desynchronized: true });
    }
    const t0 = performance.now();
    st.ctx.drawImage(v, 0, 0, w, h);
    const jpeg = encode(st.canvas);
    const header = new ArrayBuffer(20);
    const dv = new DataView(header);
    dv.setFloat64(0, Number.isFinite(captureMs) ? captureMs : NaN, true);
    dv.setFloat64(8, mediaS, true);
    dv.setUint32(16, presented >>> 0, true);
    st.inFlight++;
    // Encodes run concurrently; sends are chained so frames leave in capture order.
    st.chain = st.chain.then(() => jpeg).then((blob) => {
      st.inFlight--;
      st.encodeMs.push(performance.now() - t0);
      if (st.encodeMs.length > 60) st.encodeMs.shift();
      if (blob && st.ws === ws && ws.readyState === 1) { ws.send(new Blob([header, blob])); st.sent++; }
      else st.skipped++;
    }, () => { st.inFlight--; st.skipped++; });
  }

  function onVideoFrame(now, meta) {
    if (!st.running) return;
    st.handle = st.video.requestVideoFrameCallback(onVideoFrame);
    if (!st.ready) return;
    if (st.useMediaTime === null) st.useMediaTime = Number.isFinite(meta.mediaTime) && meta.mediaTime > 0;
    const captureMs = Number.isFinite(meta.captureTime) ? meta.captureTime : now;
    const mediaS = st.useMediaTime ? meta.mediaTime : captureMs / 1000;
    sendFrame(meta.captureTime, mediaS, meta.presentedFrames ?? ++st.counter);
  }

  function startLoop() {
    if ("requestVideoFrameCallback" in HTMLVideoElement.prototype) {
      st.handle = st.video.requestVideoFrameCallback(onVideoFrame);
    } else {
      // Without per-frame callbacks, sample at the camera rate: timing is then approximate.
      status("streaming (this browser has no requestVideoFrameCallback: frame times are approximate)", "warn");
      st.timer = setInterval(() => {
        const t = performance.now();
        sendFrame(t, t / 1000, ++st.counter);
      }, 1000 / FPS);
    }
    st.statsTimer = setInterval(() => {
      if (st.ws && st.ws.readyState === 1) {
        st.ws.send(JSON.stringify({ type: "client", sent: st.sent, skipped: st.skipped,
          encode_ms: median(st.encodeMs), width: st.canvas && st.canvas.width, height: st.canvas && st.canvas.height }));
      }
    }, 1000);
  }

  function drawAnnotated(blob) {
    if (st.drawing) return;  // never queue old pictures behind new ones
    st.drawing = true;
    createImageBitmap(blob).then((bmp) => {
      const c = $("rtme-annotated");
      if (c) {
        if (c.width !== bmp.width || c.height !== bmp.height) { c.width = bmp.width; c.height = bmp.height; }
        c.getContext("2d").drawImage(bmp, 0, 0);
        st.annotated++;
      }
      bmp.close();
    }).catch(() => {}).finally(() => { st.drawing = false; });
  }

  // ------------------------------------------------------------------ motion chart
  // Drawn here from the data the server sends a few times a second: a canvas redraw costs the
  // page ~1 ms, where re-rendering a chart component stalls it long enough to miss camera frames.
  let pendingChart = null, legendKey = "";

  function legend(names, colours) {
    const key = names.join(",");
    const el = $("rtme-legend");
    if (!el || key === legendKey) return;
    legendKey = key;
    const item = (colour, name, dash) =>
      `<span><i style="border-top:${dash ? "2px dashed" : "3px solid"} ${colour}"></i>${name}</span>`;
    el.innerHTML = names.map((n, j) => item(colours[j], n)).join("")
      + item("#111827", "motion (max)") + item("#dc2626", "threshold", true);
  }

  function drawChart(m) {
    const c = $("rtme-chart");
    if (!c) return;
    legend(m.names, m.colours);
    const dpr = window.devicePixelRatio || 1;
    const W = c.clientWidth || 640, H = c.clientHeight || 200;
    if (c.width !== Math.round(W * dpr) || c.height !== Math.round(H * dpr)) {
      c.width = Math.round(W * dpr); c.height = Math.round(H * dpr);
    }
    const g = c.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, W, H);
    const L = 30, R = 8, T = 14, B = 18, w = W - L - R, h = H - T - B;
    const t = m.t, n = t.length;
    const xb = Math.max(n ? t[n - 1] : 0, m.span), xa = xb - m.span;
    let ymax = 2;
    for (const v of m.value) if (v * 1.1 > ymax) ymax = v * 1.1;
    ymax = Math.min(ymax, 12);
    const X = (x) => L + ((x - xa) / (xb - xa)) * w;
    const Y = (y) => T + h - (Math.max(0, Math.min(y, ymax)) / ymax) * h;
    g.font = "10px sans-serif";
    for (const win of m.windows) {
      const a = X(Math.max(win.a, xa)), b = X(Math.min(win.b, xb));
      if (b <= L) continue;
      g.fillStyle = win.kind === "micro" ? "rgba(245,158,11,0.30)" : "rgba(148,163,184,0.30)";
      g.fillRect(a, T, Math.max(2, b - a), h);
      if (win.label) { g.fillStyle = "#b45309"; g.fillText(win.label, a, T - 3); }
    }
    g.strokeStyle = "#e2e8f0"; g.fillStyle = "#64748b"; g.lineWidth = 1; g.setLineDash([]);
    const ystep = ymax > 6 ? 2 : 1;
    for (let y = 0; y <= ymax + 1e-9; y += ystep) {
      g.beginPath(); g.moveTo(L, Y(y)); g.lineTo(L + w, Y(y)); g.stroke();
      g.fillText(String(y), 4, Y(y) + 3);
    }
    for (let s = Math.ceil(xa); s <= xb; s += 1) {
      if (s < 0) continue;
      g.beginPath(); g.moveTo(X(s), T); g.lineTo(X(s), T + h); g.stroke();
      if (s % 2 === 0) g.fillText(`${s} s`, X(s) - 8, H - 4);
    }
    const line = (ys, colour, width, dash) => {
      if (!n) return;
      g.strokeStyle = colour; g.lineWidth = width; g.setLineDash(dash || []);
      g.beginPath();
      for (let i = 0; i < n; i++) (i ? g.lineTo : g.moveTo).call(g, X(t[i]), Y(ys[i]));
      g.stroke();
    };
    m.regions.forEach((r, j) => line(r, m.colours[j], 1));
    line(t.map(() => m.threshold), "#dc2626", 1.5, [5, 4]);
    line(m.value, "#111827", 2);
    g.setLineDash([]);
    st.charted++;
  }

  function scheduleChart(m) {
    const first = pendingChart === null;
    pendingChart = m;  // only the newest data is drawn
    if (first) requestAnimationFrame(() => { const d = pendingChart; pendingChart = null; drawChart(d); });
  }

  function openSocket(token, fps) {
    const ws = new WebSocket(socketUrl(token, fps));
    ws.binaryType = "blob";
    st.ws = ws;
    ws.onmessage = (ev) => {
      if (typeof ev.data !== "string") { drawAnnotated(ev.data); return; }
      let m;
      try { m = JSON.parse(ev.data); } catch (e) { return; }
      if (m.type === "ping") ws.send(JSON.stringify({ type: "pong", s: m.s, c: performance.now() }));
      else if (m.type === "motion") scheduleChart(m);
      else if (m.type === "status") status(m.message);
      else if (m.type === "ready") {
        st.ready = true;
        status(m.note ? `streaming - ${m.note}` : "streaming", m.note ? "warn" : "ok");
        startLoop();
      }
    };
    ws.onclose = (ev) => {
      if (st.ws !== ws) return;
      const unexpected = st.running && ev.code !== 1000;
      stopCapture();
      status(unexpected ? `stopped: ${ev.reason || "connection lost"} (code ${ev.code})` : "camera off",
        unexpected ? "error" : "info");
    };
  }

  function stopCapture() {
    st.running = false;
    st.ready = false;
    if (st.video && st.handle !== null && st.video.cancelVideoFrameCallback) st.video.cancelVideoFrameCallback(st.handle);
    clearInterval(st.timer);
    clearInterval(st.statsTimer);
    st.handle = st.timer = st.statsTimer = null;
    if (st.media) st.media.getTracks().forEach((t) => t.stop());
    if (st.video) st.video.srcObject = null;
    st.media = null;
    const ws = st.ws;
    st.ws = null;
    if (ws && ws.readyState <= 1) ws.close(1000, "stopped by the user");
  }

  async function start(token) {
    if (st.running) return;
    if (!token) { status("the session is not ready yet: wait a second and press Start again", "error"); return; }
    if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
      status("this page cannot use a camera: browsers allow cameras only on https:// or http://localhost", "error");
      return;
    }
    st.running = true;
    st.sent = st.skipped = st.skippedEncoding = st.skippedSocket = st.counter = 0;
    st.useMediaTime = null;
    status("asking for the camera...");
    try {
      st.media = await navigator.mediaDevices.getUserMedia({ audio: false,
        video: { width: { ideal: WIDTH }, height: { ideal: HEIGHT }, frameRate: { ideal: FPS } } });
      st.video = $("rtme-preview");
      st.video.muted = true;
      st.video.srcObject = st.media;
      await st.video.play();
    } catch (e) {
      stopCapture();
      status(`camera not available: ${e.name || "error"}: ${e.message || e}`, "error");
      return;
    }
    if (!st.running) return;  // stopped while waiting for permission
    const fps = st.media.getVideoTracks()[0].getSettings().frameRate || FPS;
    status("connecting...");
    openSocket(token, fps);
  }

  function stop() {
    stopCapture();
    status("camera off");
  }

  window.rtme = {
    start, stop,
    debug: () => ({ running: st.running, ready: st.ready, sent: st.sent, skipped: st.skipped,
      skipped_encoding: st.skippedEncoding, skipped_socket: st.skippedSocket,
      annotated: st.annotated, charted: st.charted, encode_ms: median(st.encodeMs), status: st.lastStatus }),
  };
})();
