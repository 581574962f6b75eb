import { test } from "node:test";
import assert from "node:assert/strict";
import { commandFor, arrowDirection, keyLabel, KEYMAP } from "../src/keys.js";

const k = (key, mods = {}) => ({ key, ctrlKey: false, metaKey: false, altKey: false, ...mods });

test("question keys", () => {
  const expect = { a: "accept", A: "accept", y: "accept", Enter: "accept", r: "reject", n: "reject", c: "change_class",
    b: "fix_box", s: "unsure", " ": "unsure", u: "undo", ArrowRight: "next", ArrowLeft: "prev" };
  for (const [key, cmd] of Object.entries(expect)) assert.equal(commandFor(k(key), "question"), cmd, key);
  assert.equal(commandFor(k("z", { ctrlKey: true }), "question"), "undo");
  assert.equal(commandFor(k("z", { metaKey: true }), "question"), "undo");
  assert.equal(commandFor(k("a", { ctrlKey: true }), "question"), null);
  assert.equal(commandFor(k("q"), "question"), null);
});

test("box and class keys", () => {
  assert.equal(commandFor(k("ArrowUp"), "box"), "nudge");
  assert.equal(commandFor(k("Tab"), "box"), "handle");
  assert.equal(commandFor(k("Enter"), "box"), "save_box");
  assert.equal(commandFor(k("Escape"), "box"), "cancel");
  assert.equal(commandFor(k("a"), "box"), null);
  assert.equal(commandFor(k("Enter"), "class"), "save_class");
  assert.deepEqual(arrowDirection("ArrowLeft"), [-1, 0]);
  assert.deepEqual(arrowDirection("x"), [0, 0]);
});

test("every command of a mode has one key at least, no key two commands", () => {
  for (const [mode, rows] of Object.entries(KEYMAP)) {
    const seen = new Map();
    for (const [keys, cmd] of rows) {
      assert.ok(keys.length, `${mode}:${cmd}`);
      for (const key of keys) {
        assert.ok(!seen.has(key), `${mode}: ${key} is ${seen.get(key)} and ${cmd}`);
        seen.set(key, cmd);
      }
    }
  }
  assert.equal(keyLabel(" "), "Space");
  assert.equal(keyLabel("a"), "A");
});
