// The surface's keys. `commandFor` maps a keydown (its `key` and modifier
// flags, as in a KeyboardEvent) to a command name, given the mode the
// surface is in; null: not ours (the App keeps it). Pure.

/** [keys, command, what the legend says], per mode */
export const KEYMAP = {
  question: [
    [["a", "y", "Enter"], "accept", "accept: yes, it is"],
    [["r", "n", "Delete"], "reject", "reject: no, it is not"],
    [["c"], "change_class", "change the class"],
    [["b"], "fix_box", "fix the box"],
    [["s", " "], "unsure", "unsure: skip it"],
    [["u", "z", "Backspace"], "undo", "undo the last answer"],
    [["ArrowRight", "j"], "next", "next question"],
    [["ArrowLeft", "k"], "prev", "previous question"],
  ],
  box: [
    [["ArrowLeft", "ArrowRight", "ArrowUp", "ArrowDown"], "nudge", "move the chosen edge (Shift: 10 px)"],
    [["Tab"], "handle", "choose: whole box, left, top, right, bottom edge"],
    [["Enter"], "save_box", "save the box"],
    [["Escape"], "cancel", "cancel"],
  ],
  class: [
    [["ArrowUp", "ArrowDown"], "pick", "choose"],
    [["Enter"], "save_class", "save the class"],
    [["Escape"], "cancel", "cancel"],
  ],
};

const LABELS = { " ": "Space", ArrowRight: "→", ArrowLeft: "←", ArrowUp: "↑", ArrowDown: "↓", Delete: "Del" };

/** A key as the legend shows it. */
export function keyLabel(key) {
  return LABELS[key] || (key.length === 1 ? key.toUpperCase() : key);
}

/**
 * The command for a keydown in `mode` ("question", "box" or "class"), or
 * null. Ctrl/Cmd+Z is undo in the question mode; other Ctrl/Alt/Meta
 * combinations are left to the browser and the App.
 */
export function commandFor(event, mode) {
  const { key, ctrlKey, metaKey, altKey } = event;
  if (mode === "question" && (ctrlKey || metaKey) && !altKey && (key === "z" || key === "Z")) return "undo";
  if (ctrlKey || metaKey || altKey) return null;
  const k = key && key.length === 1 && mode !== "class" ? key.toLowerCase() : key;
  for (const [keys, command] of KEYMAP[mode] || []) {
    if (keys.includes(k)) return command;
  }
  return null;
}

/** For "nudge": the direction of an arrow key, [du, dv] in steps. */
export function arrowDirection(key) {
  return { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] }[key] || [0, 0];
}
