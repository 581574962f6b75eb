// The review session: the questions the surface holds, where the reviewer
// is, what was answered, and the numbers shown (what is left, the expected
// wrong labels, the pace). Plain JS, no React, no App: the component drives
// it and the tests in ../test run it in Node.
//
// Counting: the server's counts (`stats`) describe the labels as stored
// when a `questions` request ran. Writes (answers, undos) go to the server
// one after the other; questions are asked for beside them, so that a slow
// write never keeps the next question waiting. Each write carries its own
// change of the counts (a *bucket*); the numbers shown are the last counts
// plus the buckets of the writes not finished when those counts arrived (a
// write that finishes while counts are computed is taken as counted: the
// numbers may lag by that answer until the next counts).

export const OPEN = "open";
export const ACCEPTED = "accepted";
export const REJECTED = "rejected";
export const CORRECTED = "corrected";
export const UNSURE = "unsure";
/** someone else decided the label after the surface showed it */
export const TAKEN = "taken";
/** accepted with its group ("Accept these N similar labels?") */
export const BULK = "bulk";
/** a group the reviewer chose to go through one by one */
export const DECLINED = "declined";

const DECIDED = new Set([ACCEPTED, REJECTED, CORRECTED]);
/** ask for more questions when fewer open ones than this lie ahead */
export const LOW_WATER = 8;
/** ... and after this many answers: the review order changes with answers */
export const REFRESH_EVERY = 5;
/** the next questions that stay when fresh ones arrive (their images are decoded) */
export const KEEP_AHEAD = 4;
/** pace: the last this many answers; a gap longer than PAUSE_MS counts as PAUSE_MS */
export const PACE_WINDOW = 20;
export const PAUSE_MS = 60_000;

export class ReviewSession {
  constructor() {
    this.items = []; // {q, state, actionId, error, pending: writes in flight}
    this.cursor = 0;
    this.history = []; // {item, prev: {state, actionId}, bucket, result: Promise}
    this.answerTimes = [];
    this.stats = null; // the server's counts
    this.buckets = []; // {open, wrong, done}: count changes not in `stats` yet
    this.exhausted = false; // the last batch was short: nothing more to ask
    this.sinceFetch = 0; // answers since the last request for questions
    this.counts = { accepted: 0, rejected: 0, corrected: 0, unsure: 0, bulk: 0 };
    this.declined = new Set(); // labels of groups declined: not offered again
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
    // a cursor waiting past the end now stands on the first new question
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
    const q = { kind: "group", label_id: key, queue: "yellow", label: group.label, members,
      num_accepted: group.num_accepted, anchor_id: group.anchor_id, expected_wrong: wrong };
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
    const fresh = new ReviewSession();
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
      } else if ((it.state === OPEN && i < b) || it.state === UNSURE || it.pending > 0) ids.push(it.q.label_id);
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
    return (!this.exhausted && this.ahead() < LOW_WATER) || this.sinceFetch >= REFRESH_EVERY;
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
    this._count(item, state, +1, bucket);
    const entry = { item, prev, bucket, result: null, members: [] };
    if (item.q.kind === "group") {
      // the group's labels held here are answered with it
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
    this._count(item, item.state, +1, bucket);
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
    this._count(item, item.state, +1, entry.bucket);
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
    return spent > 0 ? ((t.length - 1) / spent) * 60_000 : null;
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
}
