/* certbot web chat: a launcher + panel in a shadow root (widget mode), or the panel filling
   #certbot-chat (page mode, data-mode="page"). No dependencies, CSP-safe (no eval, no inline
   styles). The bot's "Telegram HTML" is rebuilt from an allow-list, never set as innerHTML. */
(() => {
  "use strict";
  // currentScript is only set while the script first runs: capture it now
  const me = document.currentScript || document.querySelector('script[src*="/chat/widget.js"]');
  if (!me || window.__certbotWebchat) return;
  window.__certbotWebchat = true;

  const ORIGIN = new URL(me.src, location.href).origin;
  const PAGE = me.dataset.mode === "page";
  const CRED = PAGE ? "same-origin" : "omit";
  const KEY = "certbot.webchat.token";
  const LANG = (me.dataset.lang || navigator.language || "").toLowerCase().startsWith("en") ? "en" : "zh";
  const T = {
    zh: {
      launcher: "在线咨询", title: "认证咨询", label: "输入消息", placeholder: "输入消息…", send: "发送",
      close: "关闭", staff: "顾问", log: "对话记录", sending: "发送中…", retrying: "网络不稳定，正在重试…",
      offline: "网络连接中断，正在重新连接…", failed: "未发送 — 点击重试", error: "出错了，请稍后再试。",
    },
    en: {
      launcher: "Chat with us", title: "Certification enquiries", label: "Type a message",
      placeholder: "Type a message…", send: "Send", close: "Close", staff: "Consultant", log: "Conversation",
      sending: "Sending…", retrying: "Connection problem, retrying…", offline: "Offline, reconnecting…",
      failed: "Not sent — tap to retry", error: "Something went wrong. Please try again later.",
    },
  }[LANG];

  // ---- small helpers
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const uid = () =>
    crypto.randomUUID
      ? crypto.randomUUID()
      : Array.from(crypto.getRandomValues(new Uint8Array(16)), (b) => b.toString(16).padStart(2, "0")).join("");
  const fatal = (why) => Object.assign(new Error(why), { fatal: true }); // stop retrying
  const safeUrl = (u) => ((u = String(u || "").trim()), /^(https?:|mailto:|tel:)/i.test(u) ? u : null);
  const coarse = matchMedia("(pointer: coarse)").matches; // touch: don't pop the keyboard uninvited
  function h(tag, cls, props, attrs) {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    Object.assign(e, props);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    return e;
  }
  function icon(d) {
    const NS = "http://www.w3.org/2000/svg", s = document.createElementNS(NS, "svg"), p = document.createElementNS(NS, "path");
    s.setAttribute("viewBox", "0 0 24 24");
    s.setAttribute("aria-hidden", "true");
    s.setAttribute("focusable", "false");
    p.setAttribute("d", d);
    s.append(p);
    return s;
  }

  // ---- token (widget mode only; page mode uses the server's HttpOnly cookie)
  let token = null;
  if (!PAGE) try { token = localStorage.getItem(KEY); } catch (e) { /* storage blocked: keep it in memory */ }
  function saveToken(t) {
    token = t || null;
    if (!PAGE) try { t ? localStorage.setItem(KEY, t) : localStorage.removeItem(KEY); } catch (e) { /* ignore */ }
  }

  // ---- HTTP
  async function api(method, path, body, ms = 20000) {
    const headers = { Accept: "application/json" };
    if (body) headers["Content-Type"] = "application/json";
    if (!PAGE && token) headers.Authorization = "Bearer " + token;
    const ctl = new AbortController(), t = setTimeout(() => ctl.abort(), ms); // a timeout is a network error
    try {
      const res = await fetch(ORIGIN + (typeof path === "function" ? path() : path), {
        method, headers, body: body && JSON.stringify(body), credentials: CRED, mode: "cors", cache: "no-store", signal: ctl.signal,
      });
      const data = await res.json().catch(() => null);
      return { status: res.status, ok: res.ok, data: data && typeof data === "object" ? data : {} };
    } finally {
      clearTimeout(t);
    }
  }

  let sid = 0, sessionP = null; // sid counts sessions: a new one restarts the transcript
  function newSession() {
    return sessionP || (sessionP = (async () => {
      try {
        saveToken(null);
        const r = await api("POST", "/chat/api/session", { lang: LANG, page: PAGE });
        if (!r.ok) {
          if (r.data.notice) { notice(r.data.notice); throw fatal("session"); }
          throw new Error("session " + r.status);
        }
        if (!PAGE && !r.data.token) throw new Error("no token");
        saveToken(r.data.token);
        sid++;
        reset();
      } finally {
        sessionP = null;
      }
    })());
  }

  // a call with the session: create one first if needed; on 401 make a new one and try once more
  async function authed(method, path, body) {
    if (!PAGE && !token) await newSession();
    const s = sid;
    let r = await api(method, path, body);
    if (r.status === 401) {
      if (s === sid) await newSession(); // unless a concurrent call already replaced it
      r = await api(method, path, body);
    }
    return r;
  }

  // ---- DOM (built in init)
  let host, sr, root, launcher, panel, log, status, input, send, closeBtn;
  let isOpen = false, last = 0; // last = highest seq shown

  // Telegram HTML -> DOM, keeping only allowed elements; everything else becomes text
  const ALLOWED = /^(b|strong|i|em|u|ins|s|strike|del|code|pre|blockquote|a|br|span)$/;
  const parse = (html) => new DOMParser().parseFromString(String(html == null ? "" : html), "text/html").body;
  function rich(html) {
    const f = document.createDocumentFragment();
    copy(parse(html), f);
    return f;
  }
  // a visitor's words: the server sends them HTML-escaped; shown as text only, never as markup
  const plain = (text) => parse(text).textContent;
  function copy(from, to) {
    for (const n of from.childNodes) {
      if (n.nodeType === 3) to.append(n.data);
      else if (n.nodeType !== 1) continue;
      else if (!ALLOWED.test(n.localName)) to.append(n.textContent);
      else {
        // no attributes are copied, except a safe href; a link without one is a span
        const u = n.localName === "a" && safeUrl(n.getAttribute("href"));
        const e = document.createElement(n.localName === "a" && !u ? "span" : n.localName);
        if (u) Object.assign(e, { href: u, target: "_blank", rel: "noopener noreferrer" });
        copy(n, e);
        to.append(e);
      }
    }
  }

  function msgEl(m) {
    const role = ["visitor", "bot", "staff"].includes(m.role) ? m.role : "bot";
    const el = h("div", "msg msg-" + (m.kind === "notice" ? "notice" : role));
    el.dataset.seq = m.seq;
    el.dataset.role = role;
    if (role === "staff" && m.kind !== "notice") el.append(h("div", "who", { textContent: T.staff }));
    const text = h("div", "text");
    if (role === "visitor") text.textContent = plain(m.text);
    else text.append(rich(m.text));
    el.append(text);
    const box = h("div", "buttons");
    for (const row of Array.isArray(m.buttons) ? m.buttons : []) {
      const r = h("div", "row");
      for (const b of Array.isArray(row) ? row : []) {
        if (!b || !b.label) continue;
        const u = b.url && safeUrl(b.url);
        if (u) r.append(h("a", "btn url", { href: u, target: "_blank", rel: "noopener noreferrer", textContent: b.label }));
        else if (b.payload != null) {
          const x = h("button", "btn", { type: "button", textContent: b.label });
          x.onclick = () => press(el, b);
          r.append(x);
        }
      }
      if (r.firstChild) box.append(r);
    }
    if (box.firstChild) el.append(box);
    return el;
  }

  const atEnd = () => log.scrollHeight - log.scrollTop - log.clientHeight < 40;
  // scroll so that el (the first new message) is in view, never upwards
  const show = (el) => { log.scrollTop = Math.max(log.scrollTop, Math.min(el.offsetTop - 8, log.scrollHeight)); };

  // a line made here, not by the server: no data-seq
  function local(cls, role, content) {
    const el = h("div", "msg " + cls);
    el.dataset.role = role;
    const t = h("div", "text");
    t.append(content);
    el.append(t);
    log.append(el);
    show(el);
    return el;
  }
  // the same notice twice in a row (a flood's refusals) is shown once
  function notice(text) {
    const prev = log.lastElementChild;
    if (prev && prev.dataset.role === "system" && prev.dataset.said === text) return show(prev);
    local("msg-notice", "system", rich(text)).dataset.said = text;
  }

  // show messages in seq order, ignoring any already shown; returns the new elements
  function render(list) {
    const added = [];
    for (const m of (Array.isArray(list) ? list : []).filter(Boolean).sort((a, b) => a.seq - b.seq)) {
      if (!(m.seq > last)) continue;
      last = m.seq;
      if (m.role === "visitor") {
        // the server's copy of an optimistic bubble replaces it
        for (const p of log.querySelectorAll(".msg.pending")) if (p.$text === plain(m.text)) { p.remove(); break; }
      }
      const el = msgEl(m);
      log.append(el);
      added.push(el);
    }
    if (added.length) show(added[0]);
    return added;
  }

  // a new session has a new transcript
  function reset() {
    last = 0;
    for (const e of log.querySelectorAll(".msg[data-seq]")) e.remove();
  }

  let cu = null; // one catch-up at a time
  function catchUp() {
    return cu || (cu = (async () => {
      try {
        const r = await authed("GET", () => "/chat/api/messages?after=" + last);
        if (!r.ok) {
          if (r.data.notice) { notice(r.data.notice); throw fatal("messages"); }
          throw new Error("messages " + r.status);
        }
        render(r.data.messages);
        return r.data;
      } finally {
        cu = null;
      }
    })());
  }

  // ---- status line: a send in progress wins over the connection state
  let sendMsg = "", netMsg = "";
  function paint() {
    const s = sendMsg || netMsg, end = atEnd();
    if (status.textContent !== s) status.textContent = s;
    if (end) log.scrollTop = log.scrollHeight; // the line takes room from the log
  }
  const sending = (s) => { sendMsg = s; paint(); };
  const net = (s) => { netMsg = s; paint(); };

  // ---- actions (text, button press, start), sent one at a time, in order
  let chain = Promise.resolve();
  function queue(job) {
    const p = chain.then(() => deliver(job));
    chain = p.catch(() => {});
    return p;
  }
  const busy = (el, on) => { for (const b of el.querySelectorAll(".buttons button")) b.disabled = on; };

  async function deliver(job) {
    const { body, bubble, from } = job;
    if (job.start && last) return; // the transcript is no longer empty
    if (!body.client_id) body.client_id = uid(); // kept across resends of this action
    const seen = last;
    if (from) busy(from, true);
    if (bubble) bubble.classList.add("pending");
    if (!job.start) sending(T.sending);
    try {
      let r;
      for (let i = 0; ; i++) { // network errors: retry after 1s, 2s, 4s with the same client_id
        try {
          r = await authed("POST", "/chat/api/send", body);
          break;
        } catch (e) {
          if (e.fatal || i > 2) throw e;
          sending(T.retrying);
          await sleep(1000 << i);
        }
      }
      if (!r.ok) {
        notice(r.data.notice || T.error);
        if (r.status === 400 || r.status === 413) { // refused as it is: give the text back to edit
          if (bubble) bubble.remove();
          if (body.text && !input.value) input.value = body.text;
          return;
        }
        if (r.status < 500) body.client_id = uid(); // refused (flood): a retry is a new action
        throw fatal("send " + r.status);
      }
      const msgs = Array.isArray(r.data.messages) ? r.data.messages.filter(Boolean) : [];
      // messages before these not seen yet (e.g. a consultant's): fetch them first (numbers also
      // jump where nothing was missed: a new conversation, a restarted server)
      if (last && msgs.length && Math.min(...msgs.map((m) => m.seq)) > last + 1) await catchUp().catch(() => {});
      render(msgs);
      if (bubble) { // still there if the server's copy had another text, or there is none
        if (msgs.some((m) => m.role === "visitor")) bubble.remove();
        else bubble.classList.remove("pending");
      }
      if (r.data.last > last) catchUp().catch(() => {});
      focusAfter(seen, !!from);
      if (!job.start && isOpen && (!syncing || booted !== sid)) startSync(); // e.g. after a new session
    } catch (e) {
      if (bubble && bubble.isConnected) {
        bubble.classList.remove("pending");
        bubble.classList.add("failed");
        const x = h("button", "retry", { type: "button", textContent: T.failed });
        x.onclick = () => { x.remove(); bubble.classList.remove("failed"); queue(job); };
        bubble.append(x);
        show(bubble);
      }
      throw e;
    } finally {
      sending("");
      if (from) busy(from, false);
    }
  }

  // after an answer: keep focus on the input, or on the new view's first button after a press;
  // never take it from where the visitor moved it
  function focusAfter(seen, pressed) {
    const a = sr.activeElement, d = document.activeElement;
    if (a ? a !== send && !a.disabled : d && d !== document.body && d !== host) return;
    let b = null; // the first button of a message new since the press (the reply or the stream)
    if (pressed) for (const el of log.querySelectorAll(".msg[data-seq]")) if (el.dataset.seq > seen && (b = el.querySelector(".buttons button"))) break;
    if (b) b.focus({ preventScroll: true });
    else if (a || !coarse) input.focus({ preventScroll: true });
  }

  function sendText() {
    const text = input.value.trim();
    if (!text) return;
    input.value = "";
    grow();
    const p = local("msg-visitor pending", "visitor", text);
    p.$text = text;
    queue({ body: { text }, bubble: p }).catch(() => {});
  }

  function press(el, b) {
    busy(el, true); // at once: no double taps
    const p = local("msg-visitor pending", "visitor", b.label);
    p.$text = b.label;
    queue({ body: { press: b.payload }, bubble: p, from: el }).catch(() => {});
  }

  // ---- sync: load the transcript, then follow the event stream (while open)
  let gen = 0, syncing = false, booted = -1, cur = null, napT = 0, napR = null, startJob = null;

  async function boot() {
    await catchUp();
    const s = sid; // the session whose transcript was just loaded
    log.scrollTop = log.scrollHeight;
    if (!last) {
      if (!startJob || startJob.sid !== sid) startJob = { sid, start: true, body: { command: "start", arg: "" } };
      await queue(startJob);
    }
    if (s === sid) booted = sid;
  }

  function stopSync() {
    gen++;
    syncing = false;
    if (cur) cur.abort();
    clearTimeout(napT);
    if (napR) napR();
  }
  function startSync() {
    stopSync();
    syncing = true;
    loop(++gen);
  }

  async function loop(g) {
    let delay = 1000;
    while (g === gen) {
      let t0 = 0;
      try {
        if (booted !== sid) await boot();
        if (g !== gen) return;
        await stream(() => { t0 = Date.now(); net(""); });
      } catch (e) {
        if (g !== gen) return;
        if (e.fatal) { stopSync(); net(""); return; } // refused with a notice: wait for the visitor
        net(T.offline);
      }
      if (g !== gen) return;
      if (t0 && Date.now() - t0 > 10000) delay = 1000; // it had worked for a while: start the backoff again
      await new Promise((r) => { napR = r; napT = setTimeout(r, delay); });
      delay = Math.min(delay * 2, 30000);
    }
  }

  // read text/event-stream with fetch (EventSource cannot send Authorization)
  async function stream(onOpen) {
    const c = (cur = new AbortController()), s = sid;
    const headers = { Accept: "text/event-stream", "Last-Event-ID": String(last) };
    if (!PAGE && token) headers.Authorization = "Bearer " + token;
    let dog = 0;
    const kick = () => { clearTimeout(dog); dog = setTimeout(() => c.abort(), 75000); }; // silent too long: reconnect
    try {
      kick();
      const res = await fetch(ORIGIN + "/chat/api/stream", { headers, credentials: CRED, mode: "cors", cache: "no-store", signal: c.signal });
      if (res.status === 401) { if (s === sid) await newSession(); return; }
      if (!res.ok || !res.body) throw new Error("stream " + res.status);
      onOpen();
      const rd = res.body.getReader(), dec = new TextDecoder();
      let buf = "", ev = "", data = [], m;
      for (;;) {
        const { done, value } = await rd.read();
        if (done) return;
        kick();
        buf += dec.decode(value, { stream: true });
        // whole lines only; a lone \r at the end may be half of \r\n
        while ((m = /\r\n|\r|\n/.exec(buf)) && !(m[0] === "\r" && m.index === buf.length - 1)) {
          const line = buf.slice(0, m.index);
          buf = buf.slice(m.index + m[0].length);
          if (!line) { // blank line: dispatch
            if (data.length && (ev || "message") === "message") {
              try { render([JSON.parse(data.join("\n"))]); } catch (e) { /* skip a bad event */ }
            }
            ev = "";
            data = [];
          } else if (line[0] !== ":") { // ':' is a keep-alive
            const i = line.indexOf(":"), k = i < 0 ? line : line.slice(0, i);
            let v = i < 0 ? "" : line.slice(i + 1);
            if (v[0] === " ") v = v.slice(1);
            if (k === "data") data.push(v);
            else if (k === "event") ev = v;
          }
        }
      }
    } finally {
      clearTimeout(dog);
    }
  }

  // back to the tab or online: reconnect now and fetch what was missed
  function wake() {
    if (!syncing || document.hidden) return;
    startSync();
    catchUp().catch(() => {});
  }

  // ---- open / close, phones
  const phone = matchMedia("(max-width: 480px)"), vv = window.visualViewport;
  function fit() { // full screen on phones, following the visual viewport (on-screen keyboard)
    const end = atEnd();
    if (isOpen && vv && phone.matches) {
      panel.style.height = vv.height + "px";
      panel.style.top = vv.offsetTop + "px";
    } else panel.style.height = panel.style.top = "";
    if (end) log.scrollTop = log.scrollHeight;
  }
  function setOpen(on) {
    isOpen = on;
    panel.hidden = !on;
    if (launcher) launcher.setAttribute("aria-expanded", String(on));
    if (on) {
      fit();
      log.scrollTop = log.scrollHeight;
      startSync();
      if (!coarse) input.focus();
      else if (closeBtn) closeBtn.focus();
    } else stopSync();
  }
  function close() {
    setOpen(false);
    launcher.focus();
  }
  const grow = () => { input.style.height = "auto"; input.style.height = input.scrollHeight + 2 + "px"; };

  function init() {
    if (PAGE) {
      host = document.getElementById("certbot-chat");
      if (!host) {
        host = h("div", "", { id: "certbot-chat" });
        host.dataset.mode = "page";
        document.body.append(host);
      }
    } else {
      host = h("div", "", { id: "certbot-webchat" });
      document.body.append(host);
    }
    if (host.shadowRoot) return;
    sr = host.attachShadow({ mode: "open" });
    root = h(PAGE ? "div" : "aside", "root" + (PAGE ? " page" : ""), { lang: LANG === "zh" ? "zh-CN" : "en", hidden: true }, PAGE ? {} : { "aria-label": T.launcher });
    const css = h("link", "", { rel: "stylesheet", href: ORIGIN + "/chat/widget.css" });
    css.onload = css.onerror = () => { root.hidden = false; }; // no flash of unstyled content
    sr.append(css, root);

    panel = h("div", "panel", { id: "cb-panel", hidden: !PAGE }, { role: PAGE ? "region" : "dialog", "aria-label": T.title });
    const head = h("div", "head");
    head.append(h("h2", "title", { textContent: T.title }));
    log = h("div", "log", { tabIndex: 0 }, { role: "log", "aria-live": "polite", "aria-label": T.log });
    status = h("div", "status", {}, { role: "status", "aria-live": "polite" });
    const form = h("form", "compose");
    input = h("textarea", "input", { id: "cb-input", rows: 1, maxLength: 2000, placeholder: T.placeholder });
    send = h("button", "send", { type: "submit", textContent: T.send });
    form.append(h("label", "sr", { htmlFor: "cb-input", textContent: T.label }), input, send);
    panel.append(head, log, status, form);

    form.addEventListener("submit", (e) => { e.preventDefault(); sendText(); });
    input.addEventListener("keydown", (e) => { // Enter sends, Shift+Enter is a new line; not while composing (IME)
      if (e.key === "Enter" && !e.shiftKey && !e.isComposing && e.keyCode !== 229) { e.preventDefault(); sendText(); }
    });
    input.addEventListener("input", grow);
    send.addEventListener("mousedown", (e) => e.preventDefault()); // keep focus (and the keyboard) in the input

    if (!PAGE) {
      launcher = h("button", "launcher", { type: "button" }, { "aria-label": T.launcher, "aria-expanded": "false", "aria-controls": "cb-panel" });
      launcher.append(icon("M4 3h16a2 2 0 0 1 2 2v11a2 2 0 0 1-2 2H9l-5 4v-4a2 2 0 0 1-2-2V5a2 2 0 0 1 2-2z"), h("span", "", { textContent: T.launcher }));
      launcher.onclick = () => setOpen(!isOpen);
      closeBtn = h("button", "close", { type: "button" }, { "aria-label": T.close });
      closeBtn.append(icon("M6 6l12 12M18 6L6 18"));
      closeBtn.onclick = close;
      head.append(closeBtn);
      panel.addEventListener("keydown", (e) => { if (e.key === "Escape" && !e.isComposing) { e.stopPropagation(); close(); } });
      root.append(launcher);
    }
    root.append(panel);

    if (vv) { vv.addEventListener("resize", fit); vv.addEventListener("scroll", fit); }
    addEventListener("resize", fit);
    if (phone.addEventListener) phone.addEventListener("change", fit);
    document.addEventListener("visibilitychange", wake);
    addEventListener("online", () => { net(""); wake(); });
    addEventListener("offline", () => net(T.offline));
    if (PAGE) setOpen(true);
  }

  if (document.body && (!PAGE || document.getElementById("certbot-chat"))) init();
  else document.addEventListener("DOMContentLoaded", init);
})();
