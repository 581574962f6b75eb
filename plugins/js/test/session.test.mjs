import { test } from "node:test";
import assert from "node:assert/strict";
import { ReviewSession, OPEN, ACCEPTED, REJECTED, UNSURE, TAKEN, LOW_WATER, PAUSE_MS, KEEP_AHEAD, REFRESH_EVERY } from "../src/session.js";

const q = (i, p = 0.5, queue = "yellow") => ({ label_id: `l${i}`, sample_id: `s${i}`, p_correct: p, queue });
const batch = (from, n, p) => Array.from({ length: n }, (_, k) => q(from + k, p));

test("answers move to the next open question and undo brings it back", () => {
  const s = new ReviewSession();
  s.add(batch(0, 3), 3);
  assert.equal(s.current().q.label_id, "l0");
  const r = s.answer("accept", 0);
  assert.equal(r.item.state, ACCEPTED);
  assert.equal(r.expected, "pending");
  assert.equal(s.current().q.label_id, "l1");
  s.answer("reject", 1000);
  assert.equal(s.current().q.label_id, "l2");
  const e = s.undo().entry;
  assert.equal(e.item.q.label_id, "l1");
  assert.equal(s.current().q.label_id, "l1");
  assert.equal(s.current().state, OPEN);
  assert.deepEqual(s.counts, { accepted: 1, rejected: 0, corrected: 0, unsure: 0, bulk: 0 });
  assert.equal(s.undo().entry.item.q.label_id, "l0");
  assert.equal(s.undo(), null);
});

test("previous shows an answered question; answering it again keeps the order of history", () => {
  const s = new ReviewSession();
  s.add(batch(0, 3), 3);
  s.answer("accept");
  s.prev();
  assert.equal(s.current().state, ACCEPTED);
  const r = s.answer("reject");
  assert.equal(r.expected, ACCEPTED);
  assert.equal(s.current().q.label_id, "l1");
  assert.deepEqual(s.counts, { accepted: 0, rejected: 1, corrected: 0, unsure: 0, bulk: 0 });
  s.undo();
  assert.equal(s.items[0].state, ACCEPTED);
});

test("unsure and next skip; exclude holds what is open or unsure", () => {
  const s = new ReviewSession();
  s.add(batch(0, 4), 4);
  s.unsure();
  assert.equal(s.items[0].state, UNSURE);
  s.next();
  assert.equal(s.current().q.label_id, "l2");
  s.answer("accept");
  // l2's answer is on its way: left out too until stored
  assert.deepEqual(s.exclude().sort(), ["l0", "l1", "l2", "l3"]);
  s.written(s.items[2], s.history[0], 1);
  assert.deepEqual(s.exclude().sort(), ["l0", "l1", "l3"]);
});

test("the cursor waiting past the end stands on the next batch's first question", () => {
  const s = new ReviewSession();
  s.add(batch(0, 1), 20);
  assert.ok(s.exhausted);
  s.answer("accept");
  assert.equal(s.current(), null);
  s.add(batch(1, 2), 2);
  assert.equal(s.current().q.label_id, "l1");
  s.add([q(1), q(2)], 2); // held already: not added twice
  assert.equal(s.items.length, 3);
});

test("needsMore below the low-water mark unless the source ran dry", () => {
  const s = new ReviewSession();
  s.add(batch(0, LOW_WATER + 1), LOW_WATER + 1);
  assert.equal(s.needsMore(), false);
  s.answer("accept");
  s.answer("accept");
  assert.equal(s.needsMore(), true);
  s.add([], 20);
  assert.equal(s.needsMore(), false);
});

test("left and expected wrong: the last counts plus the writes not finished when they came", () => {
  const s = new ReviewSession();
  s.add([q(0, 0.2), q(1, 0.6), q(2, 0.9), q(3, 0.5, "green")], 4);
  s.countsArrived({ open_yellow: 10, expected_wrong: 4 });
  const a = s.answer("reject"); // p 0.2, on its way
  assert.equal(s.left(), 9);
  assert.ok(Math.abs(s.expectedWrong() - 3.2) < 1e-9);
  assert.equal(s.exclude().includes("l0"), true); // not stored yet: not to be sent again
  s.written(a.item, a.entry, 7);
  assert.equal(s.left(), 9); // stored, but the counts do not know yet
  assert.equal(s.exclude().includes("l0"), false);
  const b = s.answer("accept"); // p 0.6, still on its way when the counts come
  s.countsArrived({ open_yellow: 9, expected_wrong: 3.2 }); // l0 counted by the server
  assert.equal(s.left(), 8);
  assert.ok(Math.abs(s.expectedWrong() - 2.8) < 1e-9);
  s.written(b.item, b.entry, 8);
  s.countsArrived({ open_yellow: 8, expected_wrong: 2.8 });
  assert.equal(s.left(), 8);
  const u = s.undo(); // l1 open again
  assert.equal(s.left(), 9);
  s.done(u.bucket);
  s.countsArrived({ open_yellow: 9, expected_wrong: 3.2 });
  assert.equal(s.left(), 9);
  s.next();
  s.next(); // the green label: not in the yellow counts
  s.answer("accept");
  assert.equal(s.left(), 9);
});

test("a refused answer reopens the item; a label someone else took stays out of the count", () => {
  const s = new ReviewSession();
  s.add(batch(0, 2, 0.5), 2);
  s.countsArrived({ open_yellow: 2, expected_wrong: 1 });
  const r = s.answer("accept");
  s.failed(r.item, r.entry, "boom");
  assert.equal(r.item.state, OPEN);
  assert.equal(r.item.error, "boom");
  assert.equal(r.item.pending, 0);
  assert.equal(s.left(), 2);
  assert.equal(s.history.length, 0);
  s.prev();
  const r2 = s.answer("accept");
  s.taken(r2.item, r2.entry, { review: "rejected", reviewed_by: "bob" });
  assert.equal(r2.item.state, TAKEN);
  assert.equal(s.left(), 1);
  assert.equal(s.counts.accepted, 0);
  assert.equal(s.undo(), null);
  // the next counts know bob's decision
  s.countsArrived({ open_yellow: 1, expected_wrong: 0.5 });
  assert.equal(s.left(), 1);
});

test("pace: answers per minute over the last answers, pauses capped", () => {
  const s = new ReviewSession();
  s.add(batch(0, 10), 10);
  assert.equal(s.pace(), null);
  s.answer("accept", 0);
  s.answer("accept", 2000);
  s.answer("accept", 4000);
  assert.equal(s.pace(), 30);
  s.answer("accept", 4000 + 10 * PAUSE_MS); // a long pause counts as PAUSE_MS
  assert.ok(Math.abs(s.pace() - 3 / (4000 + PAUSE_MS) * 60000) < 1e-9);
});

test("fresh questions replace the open ones beyond the next few, in the new order", () => {
  const s = new ReviewSession();
  s.add(batch(0, 10), 10);
  s.answer("accept"); // l0
  s.unsure(); // l1
  // cursor on l2; l3..l6 stay (KEEP_AHEAD), l7..l9 may be re-ranked
  assert.equal(KEEP_AHEAD, 4);
  assert.deepEqual(s.exclude(), ["l0", "l1", "l2", "l3", "l4", "l5", "l6"]); // l0: answer on its way
  s.refresh([q(9), q(20), q(8)], 3);
  assert.deepEqual(s.items.map((it) => it.q.label_id), ["l0", "l1", "l2", "l3", "l4", "l5", "l6", "l9", "l20", "l8"]);
  assert.equal(s.current().q.label_id, "l2");
  assert.equal(s.exhausted, false);
  // history follows the items, not their positions
  s.prev();
  s.prev();
  assert.equal(s.current().q.label_id, "l0");
  s.refresh([], 20);
  assert.deepEqual(s.items.map((it) => it.q.label_id).slice(0, 6), ["l0", "l1", "l2", "l3", "l4", "l5"]);
  assert.equal(s.undo().entry.item.q.label_id, "l0");
  assert.equal(s.current().q.label_id, "l0");
});

test("answers ask for a fresh order every few answers", () => {
  const s = new ReviewSession();
  s.add(batch(0, 30), 30);
  for (let i = 0; i < REFRESH_EVERY - 1; i++) s.answer("accept");
  assert.equal(s.needsMore(), false);
  s.answer("accept");
  assert.equal(s.needsMore(), true);
  s.fetching();
  assert.equal(s.needsMore(), false);
});

test("a group question comes next, counts as its labels, and is taken back whole", () => {
  const s = new ReviewSession();
  s.add(batch(0, 6, 0.8), 6);
  s.countsArrived({ open_yellow: 100, expected_wrong: 20 });
  s.answer("accept"); // l0
  // the server offers l0's cluster: l3, l4 (held here) and l50 (not)
  const g = s.offer({ anchor_id: "l0", label: "7", num_accepted: 3, members: [q(3, 0.9), q(4, 0.9), q(50, 0.5)] });
  assert.equal(s.items[2], g); // right after the current question
  assert.equal(s.offer({ anchor_id: "l0", members: [q(9)] }), null); // once per anchor
  assert.equal(s.current().q.label_id, "l1");
  s.answer("accept"); // l1
  assert.equal(s.current().q.kind, "group");
  const left = s.left();
  const r = s.answer("accept");
  assert.equal(s.left(), left - 3);
  assert.ok(Math.abs(s.expectedWrong() - (20 - 0.2 * 2 - 0.1 - 0.1 - 0.5)) < 1e-9);
  assert.equal(s.items.find((it) => it.q.label_id === "l3").state, "bulk");
  assert.equal(s.current().q.label_id, "l2"); // l3, l4 are answered with the group
  assert.equal(s.counts.bulk, 3);
  assert.ok(s.exclude().includes("l50")); // the group's write is on its way
  s.written(r.item, r.entry, 9);
  assert.ok(!s.exclude().includes("l50"));
  s.undo();
  assert.equal(s.current().q.kind, "group");
  assert.equal(s.items.find((it) => it.q.label_id === "l3").state, OPEN);
  assert.equal(s.left(), left);
  assert.equal(s.counts.bulk, 0);
  // declined: nothing stored, one by one, never offered again
  s.decline();
  assert.equal(s.current().q.label_id, "l2");
  assert.equal(s.left(), left);
  assert.equal(s.offer({ anchor_id: "l1", members: [q(4)] }), null);
});
