// Stoplight App components. Built from plugins/js/src by `npm run build` (plugins/js/build.mjs); do not edit.
(() => {
  // src/app.js
  var React = window.React;
  function usePanelMethods(schema) {
    const panelId = window.__fosp__.usePanelId();
    const handleEvent = window.__foo__.usePanelEvent();
    const latest = React.useRef(null);
    latest.current = { panelId, handleEvent, view: schema && schema.view || {} };
    return React.useCallback(
      (method, params) => new Promise((resolve, reject) => {
        const { panelId: id, handleEvent: handle, view } = latest.current;
        if (!view[method]) {
          reject(new Error(`The panel has no method ${method}`));
          return;
        }
        handle(id, {
          operator: view[method],
          params,
          callback: (result) => {
            if (!result) reject(new Error(`No answer from ${method}`));
            else if (result.error) reject(new Error(result.errorMessage || String(result.error)));
            else if (result.result && result.result.error) reject(new Error(result.result.error));
            else resolve(result.result);
          }
        });
      }),
      []
    );
  }
  function mediaUrl(filepath) {
    return window.__fos__.getSampleSrc(filepath);
  }
  var SerialQueue = class {
    constructor(onChange = () => {
    }) {
      this.tail = Promise.resolve();
      this.pending = 0;
      this.onChange = onChange;
    }
    run(job) {
      this.pending++;
      this.onChange();
      const p = this.tail.then(job);
      this.tail = p.catch(() => {
      }).then(() => {
        this.pending--;
        this.onChange();
      });
      return p;
    }
  };

  // src/geometry.js
  var CONTEXT = 1;
  var MIN_REGION = 0.2;
  var MIN_SIDE = 2e-3;
  var HANDLES = ["move", "left", "top", "right", "bottom"];
  function cropRegion(box, imgW, imgH, context = CONTEXT, minRegion = MIN_REGION) {
    const [x, y, w, h] = box;
    const bw = w * imgW;
    const bh = h * imgH;
    const side = Math.max(Math.max(bw, bh) * (1 + 2 * context), minRegion * Math.max(imgW, imgH), 1);
    const cx = (x + w / 2) * imgW;
    const cy = (y + h / 2) * imgH;
    const sw = Math.min(side, imgW);
    const sh = Math.min(side, imgH);
    const sx = clamp(cx - sw / 2, 0, imgW - sw);
    const sy = clamp(cy - sh / 2, 0, imgH - sh);
    return { sx, sy, sw, sh };
  }
  function fit(sw, sh, W, H) {
    const scale = Math.min(W / sw, H / sh);
    const dw = sw * scale;
    const dh = sh * scale;
    return { dx: (W - dw) / 2, dy: (H - dh) / 2, dw, dh, scale };
  }
  function boxToCanvas(box, imgW, imgH, region, f) {
    const [x, y, w, h] = box;
    return {
      x: f.dx + (x * imgW - region.sx) * f.scale,
      y: f.dy + (y * imgH - region.sy) * f.scale,
      w: w * imgW * f.scale,
      h: h * imgH * f.scale
    };
  }
  function canvasToImage(px, py, imgW, imgH, region, f) {
    return [(region.sx + (px - f.dx) / f.scale) / imgW, (region.sy + (py - f.dy) / f.scale) / imgH];
  }
  function moveHandle(box, handle, du, dv) {
    let [x0, y0, w, h] = box;
    let x1 = x0 + w;
    let y1 = y0 + h;
    if (handle === "move") {
      const nx = clamp(x0 + du, 0, 1 - w);
      const ny = clamp(y0 + dv, 0, 1 - h);
      return [nx, ny, w, h];
    }
    if (handle === "left") x0 = clamp(x0 + du, 0, x1 - MIN_SIDE);
    else if (handle === "right") x1 = clamp(x1 + du, x0 + MIN_SIDE, 1);
    else if (handle === "top") y0 = clamp(y0 + dv, 0, y1 - MIN_SIDE);
    else if (handle === "bottom") y1 = clamp(y1 + dv, y0 + MIN_SIDE, 1);
    else throw new Error(`Unknown handle ${handle}`);
    return [x0, y0, x1 - x0, y1 - y0];
  }
  function nextHandle(handle, step = 1) {
    const i = HANDLES.indexOf(handle);
    return HANDLES[(i + step + HANDLES.length) % HANDLES.length];
  }
  function handleAt(rect, px, py, tol = 6) {
    const inY = py >= rect.y - tol && py <= rect.y + rect.h + tol;
    const inX = px >= rect.x - tol && px <= rect.x + rect.w + tol;
    if (inY && Math.abs(px - rect.x) <= tol) return "left";
    if (inY && Math.abs(px - (rect.x + rect.w)) <= tol) return "right";
    if (inX && Math.abs(py - rect.y) <= tol) return "top";
    if (inX && Math.abs(py - (rect.y + rect.h)) <= tol) return "bottom";
    if (px > rect.x && px < rect.x + rect.w && py > rect.y && py < rect.y + rect.h) return "move";
    return null;
  }
  function boxChanged(a, b, eps = 1e-6) {
    return a.length !== b.length || a.some((v, i) => Math.abs(v - b[i]) > eps);
  }
  function clamp(v, lo, hi) {
    return Math.min(Math.max(v, lo), Math.max(lo, hi));
  }

  // src/canvas.js
  var BOX = "#ffd600";
  var EDIT = "#00e5ff";
  function useSize(el) {
    const [size, setSize] = React.useState({ width: 0, height: 0 });
    React.useLayoutEffect(() => {
      if (!el) return void 0;
      const measure = () => setSize({ width: el.clientWidth, height: el.clientHeight });
      measure();
      const ro = new ResizeObserver(measure);
      ro.observe(el);
      return () => ro.disconnect();
    }, [el]);
    return size;
  }
  function prepare(canvas, w, h) {
    const dpr = window.devicePixelRatio || 1;
    if (canvas.width !== Math.round(w * dpr) || canvas.height !== Math.round(h * dpr)) {
      canvas.width = Math.round(w * dpr);
      canvas.height = Math.round(h * dpr);
    }
    const g = canvas.getContext("2d");
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    return g;
  }
  function CropCanvas({ id, entry, box, editBox, handle, size, onEdit }) {
    const ref = React.useRef(null);
    const [, redraw] = React.useReducer((x) => x + 1, 0);
    const geo = React.useRef(null);
    const drag = React.useRef(null);
    React.useLayoutEffect(() => {
      const canvas = ref.current;
      if (!canvas || !size) return;
      const g = prepare(canvas, size, size);
      geo.current = null;
      canvas.dataset.drawn = "";
      if (!entry || !entry.ready) {
        g.fillStyle = "rgba(128,128,128,0.15)";
        g.fillRect(0, 0, size, size);
        if (entry && !entry.failed) entry.promise.then(() => redraw());
        return;
      }
      const { img } = entry;
      const W = img.naturalWidth;
      const H = img.naturalHeight;
      const region = cropRegion(box, W, H);
      const f = fit(region.sw, region.sh, size, size);
      geo.current = { W, H, region, f };
      g.imageSmoothingEnabled = f.scale < 4;
      g.drawImage(img, region.sx, region.sy, region.sw, region.sh, f.dx, f.dy, f.dw, f.dh);
      canvas.dataset.drawn = id || "";
      const r = boxToCanvas(box, W, H, region, f);
      g.lineWidth = 2;
      g.strokeStyle = editBox ? "rgba(255,214,0,0.5)" : BOX;
      g.setLineDash(editBox ? [6, 4] : []);
      g.strokeRect(r.x, r.y, r.w, r.h);
      g.setLineDash([]);
      if (editBox) {
        const e = boxToCanvas(editBox, W, H, region, f);
        g.strokeStyle = EDIT;
        g.strokeRect(e.x, e.y, e.w, e.h);
        g.lineWidth = 5;
        const edges = {
          left: [e.x, e.y, e.x, e.y + e.h],
          right: [e.x + e.w, e.y, e.x + e.w, e.y + e.h],
          top: [e.x, e.y, e.x + e.w, e.y],
          bottom: [e.x, e.y + e.h, e.x + e.w, e.y + e.h]
        };
        const chosen = handle === "move" ? Object.values(edges) : [edges[handle]];
        for (const [x0, y0, x1, y1] of chosen) {
          g.beginPath();
          g.moveTo(x0, y0);
          g.lineTo(x1, y1);
          g.stroke();
        }
      }
    });
    const point = (ev) => {
      const rect = ref.current.getBoundingClientRect();
      return [ev.clientX - rect.left, ev.clientY - rect.top];
    };
    const onPointerDown = (ev) => {
      if (!editBox || !geo.current) return;
      const { W, H, region, f } = geo.current;
      const [px, py] = point(ev);
      const h = handleAt(boxToCanvas(editBox, W, H, region, f), px, py);
      if (!h) return;
      drag.current = { h, start: canvasToImage(px, py, W, H, region, f), box: editBox };
      ref.current.setPointerCapture(ev.pointerId);
    };
    const onPointerMove = (ev) => {
      if (!drag.current || !geo.current) return;
      const { W, H, region, f } = geo.current;
      const [px, py] = point(ev);
      const [u, v] = canvasToImage(px, py, W, H, region, f);
      const d = drag.current;
      onEdit(moveHandle(d.box, d.h, u - d.start[0], v - d.start[1]));
    };
    const onPointerUp = () => {
      drag.current = null;
    };
    return /* @__PURE__ */ React.createElement(
      "canvas",
      {
        ref,
        "data-cy": "review-crop",
        style: { width: size, height: size, display: "block", cursor: editBox ? "crosshair" : "default", touchAction: "none" },
        onPointerDown,
        onPointerMove,
        onPointerUp
      }
    );
  }
  function Thumbnail({ entry, box, size }) {
    const ref = React.useRef(null);
    React.useLayoutEffect(() => {
      const canvas = ref.current;
      if (!canvas || !entry || !entry.ready) return;
      const { img } = entry;
      const W = img.naturalWidth;
      const H = img.naturalHeight;
      const f = fit(W, H, size, size);
      const g = prepare(canvas, size, size);
      g.drawImage(img, 0, 0, W, H, f.dx, f.dy, f.dw, f.dh);
      const r = boxToCanvas(box, W, H, { sx: 0, sy: 0 }, f);
      g.strokeStyle = BOX;
      g.lineWidth = 2;
      g.strokeRect(r.x - 1, r.y - 1, r.w + 2, r.h + 2);
    });
    return /* @__PURE__ */ React.createElement("canvas", { ref, "data-cy": "review-thumbnail", style: { width: size, height: size, display: "block" } });
  }

  // src/keys.js
  var KEYMAP = {
    question: [
      [["a", "y", "Enter"], "accept", "accept: yes, it is"],
      [["r", "n", "Delete"], "reject", "reject: no, it is not"],
      [["c"], "change_class", "change the class"],
      [["b"], "fix_box", "fix the box"],
      [["s", " "], "unsure", "unsure: skip it"],
      [["u", "z", "Backspace"], "undo", "undo the last answer"],
      [["ArrowRight", "j"], "next", "next question"],
      [["ArrowLeft", "k"], "prev", "previous question"]
    ],
    box: [
      [["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown"], "nudge", "move the chosen edge (Shift: 10 px)"],
      [["Tab"], "handle", "choose: whole box, left, top, right, bottom edge"],
      [["Enter"], "save_box", "save the box"],
      [["Escape"], "cancel", "cancel"]
    ],
    class: [
      [["ArrowUp", "ArrowDown"], "pick", "choose"],
      [["Enter"], "save_class", "save the class"],
      [["Escape"], "cancel", "cancel"]
    ]
  };
  var LABELS = { " ": "Space", ArrowRight: "→", ArrowLeft: "←", ArrowUp: "↑", ArrowDown: "↓", Delete: "Del" };
  function keyLabel(key) {
    return LABELS[key] || (key.length === 1 ? key.toUpperCase() : key);
  }
  function commandFor(event, mode) {
    const { key, ctrlKey, metaKey, altKey } = event;
    if (mode === "question" && (ctrlKey || metaKey) && !altKey && (key === "z" || key === "Z")) return "undo";
    if (ctrlKey || metaKey || altKey) return null;
    const k = key && key.length === 1 && mode !== "class" ? key.toLowerCase() : key;
    for (const [keys, command] of KEYMAP[mode] || []) {
      if (keys.includes(k)) return command;
    }
    return null;
  }
  function arrowDirection(key) {
    return { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] }[key] || [0, 0];
  }

  // src/images.js
  var ImageCache = class {
    constructor(max = 40, makeImage = () => new Image()) {
      this.max = max;
      this.makeImage = makeImage;
      this.entries = /* @__PURE__ */ new Map();
    }
    /** The entry of `src`, loading it when new. */
    load(src) {
      let e = this.entries.get(src);
      if (e) {
        this.entries.delete(src);
        this.entries.set(src, e);
        return e;
      }
      const img = this.makeImage();
      img.decoding = "async";
      e = { img, ready: false, failed: false, promise: null };
      e.promise = new Promise((resolve) => {
        img.onload = () => {
          const done = () => {
            e.ready = true;
            resolve(e);
          };
          if (typeof img.decode === "function") img.decode().then(done, done);
          else done();
        };
        img.onerror = () => {
          e.failed = true;
          resolve(e);
        };
      });
      img.src = src;
      this.entries.set(src, e);
      while (this.entries.size > this.max) this.entries.delete(this.entries.keys().next().value);
      return e;
    }
    /** Starts loading every source (the next questions' images). */
    prefetch(srcs) {
      for (const src of srcs) this.load(src);
    }
  };

  // src/session.js
  var OPEN = "open";
  var ACCEPTED = "accepted";
  var REJECTED = "rejected";
  var CORRECTED = "corrected";
  var UNSURE = "unsure";
  var TAKEN = "taken";
  var BULK = "bulk";
  var DECLINED = "declined";
  var DECIDED = /* @__PURE__ */ new Set([ACCEPTED, REJECTED, CORRECTED]);
  var LOW_WATER = 8;
  var REFRESH_EVERY = 5;
  var KEEP_AHEAD = 4;
  var PACE_WINDOW = 20;
  var PAUSE_MS = 6e4;
  var ReviewSession = class _ReviewSession {
    constructor() {
      this.items = [];
      this.cursor = 0;
      this.history = [];
      this.answerTimes = [];
      this.stats = null;
      this.buckets = [];
      this.exhausted = false;
      this.sinceFetch = 0;
      this.counts = { accepted: 0, rejected: 0, corrected: 0, unsure: 0, bulk: 0 };
      this.declined = /* @__PURE__ */ new Set();
    }
    /** The question on screen, or null when none is left (yet). */
    current() {
      const item = this.items[this.cursor];
      return item ? item : null;
    }
    /** Appends a batch from the server; ids the session holds are skipped. */
    add(questions, asked) {
      const held = new Set(this.items.map((it) => it.q.label_id));
      for (const q of questions) {
        if (!held.has(q.label_id)) {
          this.items.push({ q, state: OPEN, actionId: null, error: null, pending: 0 });
          held.add(q.label_id);
        }
      }
      this.exhausted = questions.length < asked;
    }
    /**
     * Fresh questions in the current review order: the open questions
     * beyond the next KEEP_AHEAD are replaced by them (answers re-rank the
     * queue on the server); answered and skipped ones stay where they are.
     */
    refresh(questions, asked) {
      const b = this.boundary();
      this.items = this.items.filter((it, i) => i < b || it.state !== OPEN);
      this.add(questions, asked);
    }
    /** Index after the cursor's next KEEP_AHEAD open questions. */
    boundary() {
      let n = 0;
      let i = this.cursor + 1;
      for (; i < this.items.length && n < KEEP_AHEAD; i++) if (this.items[i].state === OPEN) n++;
      return i;
    }
    /**
     * A group question after an accept ("Accept these N similar labels?"),
     * asked next. `group`: {anchor_id, label, num_accepted, members: [q]}.
     * Not offered again once declined, nor twice for the same anchor.
     */
    offer(group) {
      const key = `group:${group.anchor_id}`;
      const members = group.members || [];
      if (!members.length || members.some((m) => this.declined.has(m.label_id))) return null;
      if (this.items.some((it) => it.q.label_id === key)) return null;
      const wrong = members.reduce((sum, m) => sum + (typeof m.p_correct === "number" ? 1 - m.p_correct : 0), 0);
      const q = {
        kind: "group",
        label_id: key,
        queue: "yellow",
        label: group.label,
        members,
        num_accepted: group.num_accepted,
        anchor_id: group.anchor_id,
        expected_wrong: wrong
      };
      const item = { q, state: OPEN, actionId: null, error: null, pending: 0 };
      this.items.splice(this.current() ? this.cursor + 1 : this.cursor, 0, item);
      return item;
    }
    /** Goes through the current group one by one instead (nothing is stored). */
    decline() {
      const item = this.current();
      if (!item || item.q.kind !== "group") return null;
      item.state = DECLINED;
      for (const m of item.q.members) this.declined.add(m.label_id);
      this.cursor = this.nextOpen(this.cursor);
      return item;
    }
    /** Starts over (a new view or label field). */
    reset() {
      const fresh = new _ReviewSession();
      fresh.answerTimes = this.answerTimes;
      fresh.counts = this.counts;
      fresh.declined = this.declined;
      Object.assign(this, fresh);
    }
    /**
     * Ids the server must not send: the open questions that stay (up to the
     * boundary), the ones the reviewer was unsure about, and those whose
     * answer is still on its way. Decided labels the server leaves out.
     */
    exclude() {
      const b = this.boundary();
      const ids = [];
      this.items.forEach((it, i) => {
        if (it.q.kind === "group") {
          if (it.pending > 0) ids.push(...it.q.members.map((m) => m.label_id));
        } else if (it.state === OPEN && i < b || it.state === UNSURE || it.pending > 0) ids.push(it.q.label_id);
      });
      return ids;
    }
    /** Open questions at or after the cursor. */
    ahead() {
      let n = 0;
      for (let i = this.cursor; i < this.items.length; i++) if (this.items[i].state === OPEN) n++;
      return n;
    }
    /** Whether to ask the server for questions now. */
    needsMore() {
      return !this.exhausted && this.ahead() < LOW_WATER || this.sinceFetch >= REFRESH_EVERY;
    }
    /** A request for questions is being sent. */
    fetching() {
      this.sinceFetch = 0;
    }
    /** Index of the first open item after `i` (items.length when none). */
    nextOpen(i) {
      let j = i + 1;
      while (j < this.items.length && this.items[j].state !== OPEN) j++;
      return Math.min(j, this.items.length);
    }
    /**
     * Records the reviewer's answer to the current question and moves on.
     * `action`: "accept" | "reject" | "correct" (`change`: what changed).
     * Returns the item answered and its previous state (for the write and
     * for undo), or null when there is no question.
     */
    answer(action, now = Date.now()) {
      const item = this.current();
      if (!item) return null;
      const state = { accept: ACCEPTED, reject: REJECTED, correct: CORRECTED }[action];
      if (!state) throw new Error(`Unknown answer ${action}`);
      const prev = { state: item.state, actionId: item.actionId };
      const bucket = this.write(item);
      this._count(item, prev.state, -1, bucket);
      item.state = state;
      item.error = null;
      this._count(item, state, 1, bucket);
      const entry = { item, prev, bucket, result: null, members: [] };
      if (item.q.kind === "group") {
        const ids = new Set(item.q.members.map((m) => m.label_id));
        entry.members = this.items.filter((it) => it.state === OPEN && ids.has(it.q.label_id));
        for (const it of entry.members) it.state = BULK;
      }
      this.history.push(entry);
      this.sinceFetch++;
      this.answerTimes.push(now);
      if (this.answerTimes.length > PACE_WINDOW) this.answerTimes.shift();
      this.cursor = this.nextOpen(this.cursor);
      return { item, entry, expected: prev.state === OPEN ? "pending" : prev.state };
    }
    /** Marks the current question as unsure and moves on (nothing is stored). */
    unsure() {
      const item = this.current();
      if (!item) return null;
      if (item.state === OPEN) {
        item.state = UNSURE;
        this.counts.unsure++;
      }
      this.cursor = this.nextOpen(this.cursor);
      return item;
    }
    next() {
      if (this.cursor < this.items.length) this.cursor++;
    }
    prev() {
      if (this.cursor > 0) this.cursor--;
    }
    /**
     * Takes back the last answer here: its item gets its previous state and
     * becomes the current question. Returns the history entry (its `result`
     * tells which server action to undo) and the undo's own bucket (finish
     * it with `done`), or null when nothing is left.
     */
    undo() {
      const entry = this.history.pop();
      if (!entry) return null;
      const { item } = entry;
      const bucket = this.write(item);
      this._count(item, item.state, -1, bucket);
      item.state = entry.prev.state;
      item.actionId = entry.prev.actionId;
      this._count(item, item.state, 1, bucket);
      for (const it of entry.members) if (it.state === BULK) it.state = OPEN;
      this.cursor = Math.max(0, this.items.indexOf(item));
      this.answerTimes.pop();
      return { entry, bucket };
    }
    /** A write about `item` starts: its bucket of count changes. */
    write(item) {
      const bucket = { open: 0, wrong: 0, done: false, item };
      this.buckets.push(bucket);
      item.pending++;
      return bucket;
    }
    /** A write finished (stored, refused or nothing to do). */
    done(bucket) {
      if (bucket.done) return;
      bucket.done = true;
      bucket.item.pending--;
    }
    /** The server wrote an answer: its action id. */
    written(item, entry, actionId) {
      item.actionId = actionId;
      this.done(entry.bucket);
    }
    /** The server refused an answer: the item is open again, with the error. */
    failed(item, entry, message) {
      const i = this.history.indexOf(entry);
      if (i >= 0) this.history.splice(i, 1);
      this._count(item, item.state, -1, entry.bucket);
      item.state = entry.prev.state;
      item.actionId = entry.prev.actionId;
      this._count(item, item.state, 1, entry.bucket);
      for (const it of entry.members) if (it.state === BULK) it.state = OPEN;
      item.error = message;
      this.done(entry.bucket);
    }
    /**
     * Someone else decided the label first: nothing was written. The label
     * is no longer open all the same, so it stays out of what is left.
     */
    taken(item, entry, decision) {
      const i = this.history.indexOf(entry);
      if (i >= 0) this.history.splice(i, 1);
      if (DECIDED.has(item.state)) this.counts[item.state]--;
      item.state = TAKEN;
      item.error = `Already ${decision.review} by ${decision.reviewed_by}`;
      this.done(entry.bucket);
    }
    /** Counts from the server: the writes finished by now are in them. */
    countsArrived(stats) {
      this.stats = stats;
      this.buckets = this.buckets.filter((b) => !b.done);
    }
    _delta(key) {
      return this.buckets.reduce((sum, b) => sum + b[key], 0);
    }
    /** Open yellow labels left in the view, after the answers given here. */
    left() {
      return this.stats ? Math.max(0, this.stats.open_yellow + this._delta("open")) : null;
    }
    /** Expected wrong labels among them (sum of 1 - P(correct)). */
    expectedWrong() {
      return this.stats ? Math.max(0, this.stats.expected_wrong + this._delta("wrong")) : null;
    }
    /** Answers per minute over the last answers (pauses capped), or null. */
    pace() {
      const t = this.answerTimes;
      if (t.length < 2) return null;
      let spent = 0;
      for (let i = 1; i < t.length; i++) spent += Math.min(Math.max(t[i] - t[i - 1], 0), PAUSE_MS);
      return spent > 0 ? (t.length - 1) / spent * 6e4 : null;
    }
    // an open yellow label that gets decided leaves the count, and comes back
    // when the decision is taken back
    // (a group counts as its labels)
    _count(item, state, sign, bucket) {
      const group = item.q.kind === "group";
      if (DECIDED.has(state)) this.counts[group ? "bulk" : state] += sign * (group ? item.q.members.length : 1);
      if (item.q.queue !== "yellow" || !DECIDED.has(state)) return;
      if (group) {
        bucket.open -= sign * item.q.members.length;
        bucket.wrong -= sign * item.q.expected_wrong;
        return;
      }
      const p = typeof item.q.p_correct === "number" ? item.q.p_correct : null;
      bucket.open -= sign;
      if (p !== null) bucket.wrong -= sign * (1 - p);
    }
  };

  // src/review.js
  var BATCH = 20;
  var PREFETCH = 6;
  function face(item) {
    return item.q.kind === "group" ? item.q.members[0] : item.q;
  }
  function useReview({ call, ready, viewKey, fieldChoice, name }) {
    const session = React.useRef(null);
    if (!session.current) session.current = new ReviewSession();
    const s = session.current;
    const [, bump] = React.useReducer((x) => x + 1, 0);
    const queue = React.useMemo(() => new SerialQueue(() => bump()), []);
    const images = React.useMemo(() => new ImageCache(24), []);
    const [meta, setMeta] = React.useState(null);
    const [message, setMessage] = React.useState(null);
    const fetching = React.useRef(false);
    const generation = React.useRef(0);
    const field = meta && meta.label_field;
    const params = (extra) => ({ label_field: field, user: name || void 0, ...extra });
    const load = React.useCallback(() => {
      if (!ready) return;
      s.reset();
      const gen = ++generation.current;
      fetching.current = true;
      call("load", { label_field: fieldChoice, limit: BATCH, exclude: [], user: name || void 0 }).then((out) => {
        if (gen !== generation.current) return;
        setMeta(out);
        if (out.error) return;
        s.add(out.questions, BATCH);
        s.countsArrived(out.stats);
      }).catch((e) => setMessage(`Could not load the questions: ${e.message}`)).finally(() => {
        if (gen === generation.current) fetching.current = false;
        bump();
      });
    }, [ready, fieldChoice, viewKey]);
    React.useEffect(load, [load]);
    const fetchMore = () => {
      if (fetching.current || !field || !s.needsMore()) return;
      fetching.current = true;
      s.fetching();
      const gen = generation.current;
      call("questions", params({ limit: BATCH, exclude: s.exclude() })).then((out) => {
        if (gen !== generation.current) return;
        s.refresh(out.questions, BATCH);
        s.countsArrived(out.stats);
      }).catch((e) => setMessage(`Could not load more questions: ${e.message}`)).finally(() => {
        if (gen === generation.current) fetching.current = false;
        bump();
      });
    };
    React.useEffect(() => {
      fetchMore();
      const srcs = [];
      for (let i = s.cursor; i < s.items.length && srcs.length < PREFETCH; i++) {
        if (s.items[i].state === OPEN || i === s.cursor) srcs.push(mediaUrl(face(s.items[i]).filepath));
      }
      images.prefetch(srcs);
    });
    const send = (action, change) => {
      const r = s.answer(change ? "correct" : action);
      if (!r) return;
      const { item, entry, expected } = r;
      if (change) {
        entry.prevChange = item.change || null;
        item.change = { ...item.change || {}, ...change };
      }
      setMessage(null);
      bump();
      const group = item.q.kind === "group";
      let method = "answer";
      let p = { label_id: item.q.label_id, action, expected };
      if (change) {
        method = "correct";
        p = { label_id: item.q.label_id, ...change, expected };
      } else if (group) {
        method = "accept_group";
        p = { label_ids: item.q.members.map((m) => m.label_id), anchor_id: item.q.anchor_id };
      }
      entry.result = queue.run(() => call(method, params(p))).then(
        (out) => {
          if (out && out.conflict) s.taken(item, entry, out.conflict);
          else s.written(item, entry, out.action_id);
          if (out && out.similar && item.state === "accepted") s.offer(out.similar);
          bump();
          return out;
        },
        (e) => {
          s.failed(item, entry, e.message);
          if (change) item.change = entry.prevChange;
          setMessage(`Not saved: ${e.message}`);
          bump();
          return null;
        }
      );
    };
    const undo = () => {
      const taken = s.undo();
      if (!taken) {
        setMessage("Nothing to undo in this session.");
        return;
      }
      const { entry, bucket } = taken;
      const { item } = entry;
      if ("prevChange" in entry) item.change = entry.prevChange;
      bump();
      queue.run(async () => {
        const out = await entry.result;
        if (!out || out.conflict || out.action_id == null) return null;
        const undone = await call("undo", params({}));
        return { undone, expected: out.action_id };
      }).then((r) => {
        if (r && r.undone.undone_action_id !== r.expected) {
          setMessage(
            `Undid your action ${r.undone.undone_action_id} (${r.undone.undone_action}), which was not this surface's last answer.`
          );
        } else if (r && r.undone.num_conflicts) {
          setMessage("Not undone: someone decided this label again since.");
        } else setMessage(null);
        bump();
      }).catch((e) => {
        setMessage(`Undo failed: ${e.message}`);
        bump();
      }).finally(() => {
        s.done(bucket);
        bump();
      });
    };
    return { s, meta, message, setMessage, send, undo, queue, images, bump, loading: meta === null || fetching.current };
  }

  // src/views.js
  var muted = { opacity: 0.7 };
  var row = { display: "flex", alignItems: "center", gap: 8, flexWrap: "wrap" };
  function Button({ id, onClick, disabled, keys, children, primary }) {
    const { Button: MuiButton } = window.__mui__;
    return /* @__PURE__ */ React.createElement(
      MuiButton,
      {
        "data-cy": `review-btn-${id}`,
        variant: primary ? "contained" : "outlined",
        size: "small",
        disabled,
        onClick,
        onMouseDown: (e) => e.preventDefault(),
        sx: { textTransform: "none", minWidth: 0 }
      },
      children,
      keys ? /* @__PURE__ */ React.createElement("span", { style: { ...muted, marginLeft: 6, fontSize: "0.8em" } }, keys) : null
    );
  }
  var pct = (p) => typeof p === "number" ? `${(100 * p).toFixed(1)} %` : "—";
  function QuestionText({ item, label, changed }) {
    const q = item.q;
    const p = q.p_correct;
    const missing = q.source === "missing";
    const status = {
      accepted: missing ? "You added this object as a label." : "You accepted this label.",
      rejected: missing ? "You dismissed this candidate." : "You rejected this label.",
      corrected: "You corrected this label.",
      unsure: "You were unsure: not decided.",
      taken: item.error
    }[item.state];
    return /* @__PURE__ */ React.createElement("div", { "data-cy": "review-question", style: { display: "flex", flexDirection: "column", gap: 10 } }, /* @__PURE__ */ React.createElement("div", { style: { fontSize: 26, fontWeight: 600 } }, missing ? "Missed object: a " : "Is this a ", /* @__PURE__ */ React.createElement("span", { "data-cy": "review-class" }, label), "?"), missing ? /* @__PURE__ */ React.createElement("div", { "data-cy": "review-missing-help" }, "A adds this box as a new label · R dismisses it") : null, changed ? /* @__PURE__ */ React.createElement("div", { style: muted }, "(was ", q.label, ")") : null, status ? /* @__PURE__ */ React.createElement("div", { "data-cy": "review-status", style: { fontWeight: 600 } }, status) : null, /* @__PURE__ */ React.createElement("div", null, /* @__PURE__ */ React.createElement("div", { style: row }, /* @__PURE__ */ React.createElement("span", null, "The triage says it is right with P(correct) ="), /* @__PURE__ */ React.createElement("b", { "data-cy": "review-p" }, pct(p))), /* @__PURE__ */ React.createElement("div", { style: { height: 6, background: "rgba(128,128,128,0.3)", borderRadius: 3, marginTop: 4 } }, /* @__PURE__ */ React.createElement("div", { style: { width: `${100 * (p || 0)}%`, height: 6, borderRadius: 3, background: "#f2c200" } }))), /* @__PURE__ */ React.createElement("div", { style: muted }, "Asked because: ", q.source === "yellow" ? `yellow queue, review rank ${q.review_rank}` : q.source === "audit" ? "audit of green: a random sample whose answers certify a green set" : missing ? "missing queue: a box no label covers (below the threshold, another model, or verified)" : q.source, typeof q.confidence === "number" ? ` · detector confidence ${q.confidence.toFixed(2)}` : ""), /* @__PURE__ */ React.createElement(Signals, { signals: q.signals }));
  }
  function Signals({ signals }) {
    if (!signals || !signals.length) return /* @__PURE__ */ React.createElement("div", { style: muted }, "No triage signals on this label.");
    const flagged = signals.filter((s) => s.flagged);
    return /* @__PURE__ */ React.createElement("div", { "data-cy": "review-signals" }, /* @__PURE__ */ React.createElement("div", { style: { marginBottom: 4 } }, flagged.length ? /* @__PURE__ */ React.createElement(React.Fragment, null, /* @__PURE__ */ React.createElement("div", null, "Flagged by:"), /* @__PURE__ */ React.createElement("ul", { "data-cy": "review-flags", style: { margin: "2px 0 6px 18px", padding: 0 } }, flagged.map((s) => /* @__PURE__ */ React.createElement("li", { key: s.name }, s.reason || s.name)))) : "No signal flags it on its own; together they leave it uncertain."), /* @__PURE__ */ React.createElement("table", { style: { borderCollapse: "collapse", fontSize: 13 } }, /* @__PURE__ */ React.createElement("tbody", null, signals.map((s) => /* @__PURE__ */ React.createElement("tr", { key: s.name, style: { fontWeight: s.flagged ? 700 : 400 } }, /* @__PURE__ */ React.createElement("td", { style: { paddingRight: 10 } }, s.name), /* @__PURE__ */ React.createElement("td", { style: { paddingRight: 10, textAlign: "right" } }, s.value === null ? "—" : s.value.toFixed(3)), /* @__PURE__ */ React.createElement("td", { style: { width: 120 } }, /* @__PURE__ */ React.createElement(EffectBar, { effect: s.effect })))))), /* @__PURE__ */ React.createElement("div", { style: { ...muted, fontSize: 12 } }, "bar: the signal's term in the triage model's P(correct) (log-odds; left = makes it look wrong)"));
  }
  function EffectBar({ effect }) {
    const w = Math.min(Math.abs(effect), 3) / 3 * 50;
    const neg = effect < 0;
    return /* @__PURE__ */ React.createElement("div", { style: { position: "relative", height: 8, background: "rgba(128,128,128,0.2)" } }, /* @__PURE__ */ React.createElement("div", { style: { position: "absolute", left: "50%", top: -2, width: 1, height: 12, background: "gray" } }), /* @__PURE__ */ React.createElement(
      "div",
      {
        style: {
          position: "absolute",
          height: 8,
          width: `${w}%`,
          left: neg ? `${50 - w}%` : "50%",
          background: neg ? "#d62728" : "#2ca02c"
        }
      }
    ));
  }
  function Actions({ on, canCorrect, hasQuestion }) {
    const k = (cmd) => {
      const entry = KEYMAP.question.find(([, c]) => c === cmd);
      return entry ? keyLabel(entry[0][0]) : "";
    };
    const no = !hasQuestion;
    return /* @__PURE__ */ React.createElement("div", { style: { display: "flex", flexDirection: "column", gap: 6 } }, /* @__PURE__ */ React.createElement("div", { style: row }, /* @__PURE__ */ React.createElement(Button, { id: "accept", primary: true, disabled: no, keys: k("accept"), onClick: () => on("accept") }, "Yes, accept"), /* @__PURE__ */ React.createElement(Button, { id: "reject", disabled: no, keys: k("reject"), onClick: () => on("reject") }, "No, reject"), /* @__PURE__ */ React.createElement(Button, { id: "unsure", disabled: no, keys: k("unsure"), onClick: () => on("unsure") }, "Unsure")), /* @__PURE__ */ React.createElement("div", { style: row }, /* @__PURE__ */ React.createElement(Button, { id: "change_class", disabled: no || !canCorrect, keys: k("change_class"), onClick: () => on("change_class") }, "Change class"), /* @__PURE__ */ React.createElement(Button, { id: "fix_box", disabled: no || !canCorrect, keys: k("fix_box"), onClick: () => on("fix_box") }, "Fix box"), /* @__PURE__ */ React.createElement(Button, { id: "undo", keys: k("undo"), onClick: () => on("undo") }, "Undo"), /* @__PURE__ */ React.createElement(Button, { id: "prev", keys: k("prev"), onClick: () => on("prev") }, "Previous"), /* @__PURE__ */ React.createElement(Button, { id: "next", keys: k("next"), onClick: () => on("next") }, "Next")), !canCorrect ? /* @__PURE__ */ React.createElement("div", { style: { ...muted, fontSize: 12 } }, "Change class / fix box need corrections in the review core (not in this version).") : null);
  }
  function ClassPicker({ classes, current, onPick, onCancel }) {
    const [text, setText] = React.useState("");
    const [i, setI] = React.useState(0);
    const shown = React.useMemo(() => {
      const t = text.trim().toLowerCase();
      const starts = classes.filter((c) => c.toLowerCase().startsWith(t));
      const has = classes.filter((c) => !c.toLowerCase().startsWith(t) && c.toLowerCase().includes(t));
      return [...starts, ...has];
    }, [classes, text]);
    const chosen = shown[Math.min(i, shown.length - 1)];
    const onKeyDown = (e) => {
      e.stopPropagation();
      if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        e.preventDefault();
        setI((v) => Math.max(0, Math.min(shown.length - 1, v + (e.key === "ArrowDown" ? 1 : -1))));
      } else if (e.key === "Enter") {
        e.preventDefault();
        const typed = text.trim();
        if (chosen) onPick(chosen);
        else if (typed) onPick(typed);
      } else if (e.key === "Escape") {
        e.preventDefault();
        onCancel();
      }
    };
    return /* @__PURE__ */ React.createElement("div", { "data-cy": "review-class-picker", style: { display: "flex", flexDirection: "column", gap: 6 } }, /* @__PURE__ */ React.createElement("div", null, "Change the class of this ", /* @__PURE__ */ React.createElement("b", null, current), " to:"), /* @__PURE__ */ React.createElement(
      "input",
      {
        autoFocus: true,
        "data-cy": "review-class-input",
        value: text,
        placeholder: "type a class, ↑/↓, Enter (Esc: cancel)",
        onChange: (e) => {
          setText(e.target.value);
          setI(0);
        },
        onKeyDown,
        style: { fontSize: 16, padding: 6 }
      }
    ), /* @__PURE__ */ React.createElement("div", { style: { maxHeight: 220, overflowY: "auto" } }, shown.map((c) => /* @__PURE__ */ React.createElement(
      "div",
      {
        key: c,
        "data-cy": `review-class-option-${c}`,
        onMouseDown: (e) => e.preventDefault(),
        onClick: () => onPick(c),
        style: {
          padding: "2px 6px",
          cursor: "pointer",
          background: c === chosen ? "rgba(255,109,4,0.35)" : "transparent",
          opacity: c === current ? 0.5 : 1
        }
      },
      c
    )), !shown.length && text.trim() ? /* @__PURE__ */ React.createElement("div", { style: muted }, "Enter: new class “", text.trim(), "”") : null));
  }
  function NamePrompt({ initial, onSave }) {
    const [name, setName] = React.useState(initial || "");
    const save = () => name.trim() && onSave(name.trim());
    return /* @__PURE__ */ React.createElement("div", { "data-cy": "review-name-prompt", style: { display: "flex", flexDirection: "column", gap: 8, maxWidth: 420, margin: "40px auto" } }, /* @__PURE__ */ React.createElement("div", { style: { fontSize: 20, fontWeight: 600 } }, "Who is reviewing?"), /* @__PURE__ */ React.createElement("div", { style: muted }, "FiftyOne has no login here: your name is recorded with every answer of this session (as a name you gave, not a verified account)."), /* @__PURE__ */ React.createElement(
      "input",
      {
        autoFocus: true,
        "data-cy": "review-name-input",
        value: name,
        placeholder: "your name",
        onChange: (e) => setName(e.target.value),
        onKeyDown: (e) => {
          e.stopPropagation();
          if (e.key === "Enter") save();
        },
        style: { fontSize: 16, padding: 6 }
      }
    ), /* @__PURE__ */ React.createElement("div", null, /* @__PURE__ */ React.createElement(Button, { id: "name-save", primary: true, disabled: !name.trim(), onClick: save }, "Start reviewing")));
  }
  function Counts({ session, pending, reviewer, onRename, missing }) {
    const left = session.left();
    const wrong = session.expectedWrong();
    const pace = session.pace();
    const c = session.counts;
    return /* @__PURE__ */ React.createElement("div", { "data-cy": "review-counts", style: { ...row, gap: 16, fontSize: 13 } }, /* @__PURE__ */ React.createElement("span", null, missing ? "Open candidates" : "Left in yellow", ": ", /* @__PURE__ */ React.createElement("b", { "data-cy": "review-left" }, left === null ? "…" : left.toLocaleString())), /* @__PURE__ */ React.createElement("span", null, missing ? "Expected no object" : "Expected wrong among them", ": ", /* @__PURE__ */ React.createElement("b", { "data-cy": "review-expected-wrong" }, wrong === null ? "…" : wrong.toFixed(1))), /* @__PURE__ */ React.createElement("span", null, "Pace: ", /* @__PURE__ */ React.createElement("b", { "data-cy": "review-pace" }, pace === null ? "—" : `${pace.toFixed(1)} / min`)), /* @__PURE__ */ React.createElement("span", { style: muted }, "This session: ", c.accepted, " accepted, ", c.rejected, " rejected, ", c.corrected, " corrected, ", c.unsure, " unsure"), /* @__PURE__ */ React.createElement("span", { style: muted, "data-cy": "review-pending" }, pending ? `saving ${pending}…` : "all saved"), /* @__PURE__ */ React.createElement("span", { style: muted }, "Reviewer: ", /* @__PURE__ */ React.createElement("a", { href: "#", onClick: (e) => {
      e.preventDefault();
      onRename();
    } }, reviewer || "?")));
  }
  function Legend({ mode }) {
    return /* @__PURE__ */ React.createElement("div", { "data-cy": "review-legend", style: { ...row, gap: 12, fontSize: 12, ...muted } }, (KEYMAP[mode] || []).map(([keys, , text]) => /* @__PURE__ */ React.createElement("span", { key: text }, /* @__PURE__ */ React.createElement("b", null, keys.map(keyLabel).join(" / ")), " ", text)));
  }
  var GROUP_SHOWN = 24;
  function GroupQuestion({ item, images }) {
    const q = item.q;
    const n = q.members.length;
    const status = { accepted: `You accepted these ${n} labels.`, declined: "You went through them one by one." }[item.state];
    return /* @__PURE__ */ React.createElement("div", { "data-cy": "review-group", style: { display: "flex", flexDirection: "column", gap: 10 } }, /* @__PURE__ */ React.createElement("div", { style: { fontSize: 24, fontWeight: 600 } }, "Accept these ", /* @__PURE__ */ React.createElement("span", { "data-cy": "review-group-size" }, n), " similar labels as ", /* @__PURE__ */ React.createElement("span", { "data-cy": "review-class" }, q.label), "?"), status ? /* @__PURE__ */ React.createElement("div", { "data-cy": "review-status", style: { fontWeight: 600 } }, status) : null, /* @__PURE__ */ React.createElement("div", { style: muted }, q.num_accepted, " labels of this tight cluster (same class, close in embedding space) were accepted one by one and none rejected. Accepting is one logged, undoable bulk decision: it is not counted as ", n, " labels a person checked. No (R) goes through them one by one."), /* @__PURE__ */ React.createElement("div", { style: { display: "flex", flexWrap: "wrap", gap: 4 } }, q.members.slice(0, GROUP_SHOWN).map((m) => /* @__PURE__ */ React.createElement(
      CropCanvas,
      {
        key: m.label_id,
        id: m.label_id,
        entry: images.load(mediaUrl(m.filepath)),
        box: m.bounding_box,
        size: 84
      }
    )), n > GROUP_SHOWN ? /* @__PURE__ */ React.createElement("div", { style: { ...muted, alignSelf: "center" } }, "and ", n - GROUP_SHOWN, " more") : null));
  }

  // src/ReviewQueue.js
  var NAME_KEY = "stoplight.reviewer";
  function storedName() {
    try {
      return window.sessionStorage.getItem(NAME_KEY) || "";
    } catch (e) {
      return "";
    }
  }
  function ReviewQueue(props) {
    const call = usePanelMethods(props.schema);
    const viewKey = props.data && props.data.view_key || null;
    const ready = !!(props.schema && props.schema.view && props.schema.view.load);
    const [name, setName] = React.useState(storedName);
    const [asking, setAsking] = React.useState(false);
    const [mode, setMode] = React.useState("question");
    const [editBox, setEditBox] = React.useState(null);
    const [handle, setHandle] = React.useState("move");
    const [fieldChoice, setFieldChoice] = React.useState(null);
    const [focused, setFocused] = React.useState(false);
    const { s, meta, message, setMessage, send, undo, queue, images, bump, loading } = useReview({
      call,
      ready,
      viewKey,
      fieldChoice,
      name
    });
    const root = React.useRef(null);
    const [rootEl, setRootEl] = React.useState(null);
    const rootRef = React.useCallback((el) => {
      root.current = el;
      setRootEl(el);
    }, []);
    const area = useSize(rootEl);
    const reviewer = meta && meta.reviewer || name;
    const field = meta && meta.label_field;
    const showing = !!reviewer && !asking;
    React.useEffect(() => {
      if (showing && mode !== "class" && root.current) root.current.focus({ preventScroll: true });
    }, [showing, mode, rootEl]);
    const command = (cmd) => {
      const item2 = s.current();
      const group = item2 && item2.q.kind === "group";
      if (group && (cmd === "reject" || cmd === "unsure")) s.decline();
      else if (group && (cmd === "change_class" || cmd === "fix_box")) setMessage("A group is accepted or gone through one by one.");
      else if (cmd === "accept" || cmd === "reject") send(cmd);
      else if (cmd === "unsure") s.unsure();
      else if (cmd === "next") s.next();
      else if (cmd === "prev") s.prev();
      else if (cmd === "undo") undo();
      else if ((cmd === "change_class" || cmd === "fix_box") && item2) {
        if (!meta || !meta.can_correct) {
          setMessage("Corrections need the review core's correct_label, which this version does not have.");
        } else if (cmd === "change_class") setMode("class");
        else {
          setEditBox(shownBox(item2));
          setHandle("move");
          setMode("box");
        }
      }
      bump();
    };
    const saveBox = () => {
      const item2 = s.current();
      setMode("question");
      if (item2 && editBox && boxChanged(editBox, shownBox(item2))) {
        send("correct", { bounding_box: editBox.map((v) => +v.toFixed(6)) });
      }
      setEditBox(null);
    };
    const onKeyDown = (e) => {
      if (asking || mode === "class" || ["INPUT", "SELECT", "TEXTAREA"].includes(e.target.tagName)) return;
      const cmd = commandFor(e, mode);
      if (!cmd) return;
      e.preventDefault();
      e.stopPropagation();
      if (mode === "box") {
        const item2 = s.current();
        if (cmd === "nudge" && item2) {
          const entry2 = images.load(mediaUrl(face(item2).filepath));
          const W = entry2.ready ? entry2.img.naturalWidth : 1e3;
          const H = entry2.ready ? entry2.img.naturalHeight : 1e3;
          const [du, dv] = arrowDirection(e.key);
          const step = e.shiftKey ? 10 : 1;
          setEditBox((b) => moveHandle(b, handle, du * step / W, dv * step / H));
        } else if (cmd === "handle") setHandle((h) => nextHandle(h, e.shiftKey ? -1 : 1));
        else if (cmd === "save_box") saveBox();
        else if (cmd === "cancel") {
          setMode("question");
          setEditBox(null);
        }
        return;
      }
      command(cmd);
    };
    if (meta && meta.error) return /* @__PURE__ */ React.createElement("div", { style: { padding: 16 } }, meta.error);
    if (!reviewer || asking) {
      return /* @__PURE__ */ React.createElement(
        NamePrompt,
        {
          initial: name,
          onSave: (n) => {
            try {
              window.sessionStorage.setItem(NAME_KEY, n);
            } catch (e) {
            }
            setName(n);
            setAsking(false);
          }
        }
      );
    }
    const item = s.current();
    const entry = item ? images.load(mediaUrl(face(item).filepath)) : null;
    const wide = area.width >= 760;
    const side = Math.round(
      wide ? Math.max(200, Math.min(area.width - 420, area.height - 170, 720)) : Math.max(200, Math.min(area.width - 24, area.height * 0.45, 720))
    );
    const label = item ? shownLabel(item) : null;
    return /* @__PURE__ */ React.createElement(
      "div",
      {
        ref: rootRef,
        tabIndex: 0,
        onKeyDown,
        onFocus: () => setFocused(true),
        onBlur: (e) => {
          if (!e.currentTarget.contains(e.relatedTarget)) setFocused(false);
        },
        onMouseDown: (e) => {
          if (!["INPUT", "TEXTAREA"].includes(e.target.tagName)) root.current.focus({ preventScroll: true });
        },
        "data-cy": "review-queue",
        "data-question-id": item ? item.q.label_id : "",
        "data-question-state": item ? item.state : "",
        "data-mode": mode,
        style: { height: "100%", minHeight: 480, display: "flex", flexDirection: "column", gap: 8, padding: 12, outline: "none", boxSizing: "border-box" }
      },
      meta && meta.fields && meta.fields.length > 1 ? /* @__PURE__ */ React.createElement("label", { style: { fontSize: 13 } }, "Label field:", " ", /* @__PURE__ */ React.createElement(
        "select",
        {
          "data-cy": "review-field",
          value: field || "",
          onChange: (e) => {
            setFieldChoice(e.target.value);
            root.current.focus({ preventScroll: true });
          }
        },
        meta.fields.map((f) => /* @__PURE__ */ React.createElement("option", { key: f, value: f }, f))
      )) : null,
      /* @__PURE__ */ React.createElement(
        Counts,
        {
          session: s,
          pending: queue.pending,
          reviewer,
          onRename: () => setAsking(true),
          missing: !!(meta && meta.adds_to)
        }
      ),
      !focused ? /* @__PURE__ */ React.createElement("div", { "data-cy": "review-focus-hint", style: { fontSize: 13, color: "#ff6d04" } }, "Click here to answer with the keys.") : null,
      /* @__PURE__ */ React.createElement("div", { style: { flex: 1, minHeight: 0, display: "flex", flexDirection: wide ? "row" : "column", gap: 16, overflowY: wide ? "visible" : "auto" } }, item ? /* @__PURE__ */ React.createElement(React.Fragment, null, /* @__PURE__ */ React.createElement("div", { style: { display: "flex", flexDirection: "column", gap: 8 } }, /* @__PURE__ */ React.createElement(
        CropCanvas,
        {
          id: item.q.label_id,
          entry,
          box: shownBox(item),
          editBox: mode === "box" ? editBox : null,
          handle,
          size: side,
          onEdit: setEditBox
        }
      )), /* @__PURE__ */ React.createElement("div", { style: { flex: 1, minWidth: 300, display: "flex", flexDirection: "column", gap: 12, overflowY: wide ? "auto" : "visible" } }, item.q.kind === "group" ? /* @__PURE__ */ React.createElement(GroupQuestion, { item, images }) : mode === "class" ? /* @__PURE__ */ React.createElement(
        ClassPicker,
        {
          classes: meta && meta.classes || [],
          current: label,
          onPick: (c) => {
            setMode("question");
            if (c !== label) send("correct", { label: c });
          },
          onCancel: () => setMode("question")
        }
      ) : /* @__PURE__ */ React.createElement(QuestionText, { item, label, changed: item.change && item.change.label !== item.q.label }), mode === "box" ? /* @__PURE__ */ React.createElement("div", { "data-cy": "review-box-help" }, "Fixing the box: arrows move the highlighted part, Tab picks another, Enter saves, Esc cancels; or drag it.") : null, /* @__PURE__ */ React.createElement(Actions, { on: command, canCorrect: !!(meta && meta.can_correct), hasQuestion: !!item }), /* @__PURE__ */ React.createElement(Thumbnail, { entry, box: shownBox(item), size: 140 }), item.error && item.state !== "taken" ? /* @__PURE__ */ React.createElement("div", { "data-cy": "review-item-error" }, "⚠ ", item.error) : null)) : /* @__PURE__ */ React.createElement("div", { "data-cy": "review-empty", style: { margin: "auto", textAlign: "center" } }, loading ? "Loading questions…" : meta && meta.adds_to ? "No open candidates of missed objects left in this view." : "No open yellow labels left in this view.", /* @__PURE__ */ React.createElement("div", { style: { marginTop: 12 } }, /* @__PURE__ */ React.createElement(Actions, { on: command, canCorrect: false, hasQuestion: false })))),
      message ? /* @__PURE__ */ React.createElement("div", { "data-cy": "review-message" }, "⚠ ", message) : null,
      /* @__PURE__ */ React.createElement(Legend, { mode: mode === "class" ? "class" : mode })
    );
  }
  function shownLabel(item) {
    return item.change && item.change.label ? item.change.label : item.q.label;
  }
  function shownBox(item) {
    return item.change && item.change.bounding_box ? item.change.bounding_box : face(item).bounding_box;
  }

  // src/index.js
  window.__fop__.registerComponent({
    name: "StoplightReviewQueue",
    label: "Stoplight review queue",
    component: ReviewQueue,
    type: window.__fop__.PluginComponentType.Component,
    activator: () => true
  });
})();
