// The surface's parts other than the picture: the question and why it is
// asked, the buttons, the class picker, the name prompt, the counts and
// the key legend. Presentational: state and actions come from props.

import { React, mediaUrl } from "./app.js";
import { CropCanvas } from "./canvas.js";
import { KEYMAP, keyLabel } from "./keys.js";

const muted = { opacity: 0.7 };
const row = { display: "flex", alignItems: "center", gap: 8, flexWrap: "wrap" };

function Button({ id, onClick, disabled, keys, children, primary }) {
  const { Button: MuiButton } = window.__mui__;
  return (
    <MuiButton
      data-cy={`review-btn-${id}`}
      variant={primary ? "contained" : "outlined"}
      size="small"
      disabled={disabled}
      onClick={onClick}
      // a click keeps the keyboard on the surface
      onMouseDown={(e) => e.preventDefault()}
      sx={{ textTransform: "none", minWidth: 0 }}
    >
      {children}
      {keys ? <span style={{ ...muted, marginLeft: 6, fontSize: "0.8em" }}>{keys}</span> : null}
    </MuiButton>
  );
}

const pct = (p) => (typeof p === "number" ? `${(100 * p).toFixed(1)} %` : "—");

/** The question, how sure the triage is, and the signals behind it. */
export function QuestionText({ item, label, changed }) {
  const q = item.q;
  const p = q.p_correct;
  // the missing queue: a candidate box of an object the labels missed
  const missing = q.source === "missing";
  const status = {
    accepted: missing ? "You added this object as a label." : "You accepted this label.",
    rejected: missing ? "You dismissed this candidate." : "You rejected this label.",
    corrected: "You corrected this label.",
    unsure: "You were unsure: not decided.",
    taken: item.error,
  }[item.state];
  return (
    <div data-cy="review-question" style={{ display: "flex", flexDirection: "column", gap: 10 }}>
      <div style={{ fontSize: 26, fontWeight: 600 }}>
        {missing ? "Missed object: a " : "Is this a "}
        <span data-cy="review-class">{label}</span>?
      </div>
      {missing ? <div data-cy="review-missing-help">A adds this box as a new label · R dismisses it</div> : null}
      {changed ? <div style={muted}>(was {q.label})</div> : null}
      {status ? (
        <div data-cy="review-status" style={{ fontWeight: 600 }}>
          {status}
        </div>
      ) : null}
      <div>
        <div style={row}>
          <span>The triage says it is right with P(correct) =</span>
          <b data-cy="review-p">{pct(p)}</b>
        </div>
        <div style={{ height: 6, background: "rgba(128,128,128,0.3)", borderRadius: 3, marginTop: 4 }}>
          <div style={{ width: `${100 * (p || 0)}%`, height: 6, borderRadius: 3, background: "#f2c200" }} />
        </div>
      </div>
      <div style={muted}>
        Asked because: {q.source === "yellow" ? `yellow queue, review rank ${q.review_rank}`
          : q.source === "audit" ? "audit of green: a random sample whose answers certify a green set"
          : missing ? "missing queue: a box no label covers (below the threshold, another model, or verified)"
          : q.source}
        {typeof q.confidence === "number" ? ` · detector confidence ${q.confidence.toFixed(2)}` : ""}
      </div>
      <Signals signals={q.signals} />
    </div>
  );
}

function Signals({ signals }) {
  if (!signals || !signals.length) return <div style={muted}>No triage signals on this label.</div>;
  const flagged = signals.filter((s) => s.flagged);
  return (
    <div data-cy="review-signals">
      <div style={{ marginBottom: 4 }}>
        {flagged.length ? (
          <>
            <div>Flagged by:</div>
            <ul data-cy="review-flags" style={{ margin: "2px 0 6px 18px", padding: 0 }}>
              {flagged.map((s) => (
                <li key={s.name}>{s.reason || s.name}</li>
              ))}
            </ul>
          </>
        ) : (
          "No signal flags it on its own; together they leave it uncertain."
        )}
      </div>
      <table style={{ borderCollapse: "collapse", fontSize: 13 }}>
        <tbody>
          {signals.map((s) => (
            <tr key={s.name} style={{ fontWeight: s.flagged ? 700 : 400 }}>
              <td style={{ paddingRight: 10 }}>{s.name}</td>
              <td style={{ paddingRight: 10, textAlign: "right" }}>{s.value === null ? "—" : s.value.toFixed(3)}</td>
              <td style={{ width: 120 }}>
                <EffectBar effect={s.effect} />
              </td>
            </tr>
          ))}
        </tbody>
      </table>
      <div style={{ ...muted, fontSize: 12 }}>
        bar: the signal's term in the triage model's P(correct) (log-odds; left = makes it look wrong)
      </div>
    </div>
  );
}

function EffectBar({ effect }) {
  const w = Math.min(Math.abs(effect), 3) / 3 * 50;
  const neg = effect < 0;
  return (
    <div style={{ position: "relative", height: 8, background: "rgba(128,128,128,0.2)" }}>
      <div style={{ position: "absolute", left: "50%", top: -2, width: 1, height: 12, background: "gray" }} />
      <div
        style={{
          position: "absolute",
          height: 8,
          width: `${w}%`,
          left: neg ? `${50 - w}%` : "50%",
          background: neg ? "#d62728" : "#2ca02c",
        }}
      />
    </div>
  );
}

/** The answer buttons (the mouse does what the keys do). */
export function Actions({ on, canCorrect, hasQuestion }) {
  const k = (cmd) => {
    const entry = KEYMAP.question.find(([, c]) => c === cmd);
    return entry ? keyLabel(entry[0][0]) : "";
  };
  const no = !hasQuestion;
  return (
    <div style={{ display: "flex", flexDirection: "column", gap: 6 }}>
      <div style={row}>
        <Button id="accept" primary disabled={no} keys={k("accept")} onClick={() => on("accept")}>Yes, accept</Button>
        <Button id="reject" disabled={no} keys={k("reject")} onClick={() => on("reject")}>No, reject</Button>
        <Button id="unsure" disabled={no} keys={k("unsure")} onClick={() => on("unsure")}>Unsure</Button>
      </div>
      <div style={row}>
        <Button id="change_class" disabled={no || !canCorrect} keys={k("change_class")} onClick={() => on("change_class")}>
          Change class
        </Button>
        <Button id="fix_box" disabled={no || !canCorrect} keys={k("fix_box")} onClick={() => on("fix_box")}>Fix box</Button>
        <Button id="undo" keys={k("undo")} onClick={() => on("undo")}>Undo</Button>
        <Button id="prev" keys={k("prev")} onClick={() => on("prev")}>Previous</Button>
        <Button id="next" keys={k("next")} onClick={() => on("next")}>Next</Button>
      </div>
      {!canCorrect ? (
        <div style={{ ...muted, fontSize: 12 }}>Change class / fix box need corrections in the review core (not in this version).</div>
      ) : null}
    </div>
  );
}

/** Class picker: type to filter, arrows to choose, Enter to save. */
export function ClassPicker({ classes, current, onPick, onCancel }) {
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
      // a new class name, when nothing matches what was typed
      if (chosen) onPick(chosen);
      else if (typed) onPick(typed);
    } else if (e.key === "Escape") {
      e.preventDefault();
      onCancel();
    }
  };
  return (
    <div data-cy="review-class-picker" style={{ display: "flex", flexDirection: "column", gap: 6 }}>
      <div>
        Change the class of this <b>{current}</b> to:
      </div>
      <input
        autoFocus
        data-cy="review-class-input"
        value={text}
        placeholder="type a class, ↑/↓, Enter (Esc: cancel)"
        onChange={(e) => {
          setText(e.target.value);
          setI(0);
        }}
        onKeyDown={onKeyDown}
        style={{ fontSize: 16, padding: 6 }}
      />
      <div style={{ maxHeight: 220, overflowY: "auto" }}>
        {shown.map((c) => (
          <div
            key={c}
            data-cy={`review-class-option-${c}`}
            onMouseDown={(e) => e.preventDefault()}
            onClick={() => onPick(c)}
            style={{
              padding: "2px 6px",
              cursor: "pointer",
              background: c === chosen ? "rgba(255,109,4,0.35)" : "transparent",
              opacity: c === current ? 0.5 : 1,
            }}
          >
            {c}
          </div>
        ))}
        {!shown.length && text.trim() ? <div style={muted}>Enter: new class “{text.trim()}”</div> : null}
      </div>
    </div>
  );
}

/** Asks the reviewer's name once per browser session (no login). */
export function NamePrompt({ initial, onSave }) {
  const [name, setName] = React.useState(initial || "");
  const save = () => name.trim() && onSave(name.trim());
  return (
    <div data-cy="review-name-prompt" style={{ display: "flex", flexDirection: "column", gap: 8, maxWidth: 420, margin: "40px auto" }}>
      <div style={{ fontSize: 20, fontWeight: 600 }}>Who is reviewing?</div>
      <div style={muted}>
        FiftyOne has no login here: your name is recorded with every answer of this session (as a name you gave,
        not a verified account).
      </div>
      <input
        autoFocus
        data-cy="review-name-input"
        value={name}
        placeholder="your name"
        onChange={(e) => setName(e.target.value)}
        onKeyDown={(e) => {
          e.stopPropagation();
          if (e.key === "Enter") save();
        }}
        style={{ fontSize: 16, padding: 6 }}
      />
      <div>
        <Button id="name-save" primary disabled={!name.trim()} onClick={save}>
          Start reviewing
        </Button>
      </div>
    </div>
  );
}

/** What is left, what the triage expects in it, and the pace. */
export function Counts({ session, pending, reviewer, onRename, missing }) {
  const left = session.left();
  const wrong = session.expectedWrong();
  const pace = session.pace();
  const c = session.counts;
  return (
    <div data-cy="review-counts" style={{ ...row, gap: 16, fontSize: 13 }}>
      <span>
        {missing ? "Open candidates" : "Left in yellow"}: <b data-cy="review-left">{left === null ? "…" : left.toLocaleString()}</b>
      </span>
      <span>
        {missing ? "Expected no object" : "Expected wrong among them"}: <b data-cy="review-expected-wrong">{wrong === null ? "…" : wrong.toFixed(1)}</b>
      </span>
      <span>
        Pace: <b data-cy="review-pace">{pace === null ? "—" : `${pace.toFixed(1)} / min`}</b>
      </span>
      <span style={muted}>
        This session: {c.accepted} accepted, {c.rejected} rejected, {c.corrected} corrected, {c.unsure} unsure
      </span>
      <span style={muted} data-cy="review-pending">
        {pending ? `saving ${pending}…` : "all saved"}
      </span>
      <span style={muted}>
        Reviewer: <a href="#" onClick={(e) => { e.preventDefault(); onRename(); }}>{reviewer || "?"}</a>
      </span>
    </div>
  );
}

/** The keys of the current mode. */
export function Legend({ mode }) {
  return (
    <div data-cy="review-legend" style={{ ...row, gap: 12, fontSize: 12, ...muted }}>
      {(KEYMAP[mode] || []).map(([keys, , text]) => (
        <span key={text}>
          <b>{keys.map(keyLabel).join(" / ")}</b> {text}
        </span>
      ))}
    </div>
  );
}

/** Most crops a group question shows */
const GROUP_SHOWN = 24;

/** "Accept these N similar labels?": the group the review core offers. */
export function GroupQuestion({ item, images }) {
  const q = item.q;
  const n = q.members.length;
  const status = { accepted: `You accepted these ${n} labels.`, declined: "You went through them one by one." }[item.state];
  return (
    <div data-cy="review-group" style={{ display: "flex", flexDirection: "column", gap: 10 }}>
      <div style={{ fontSize: 24, fontWeight: 600 }}>
        Accept these <span data-cy="review-group-size">{n}</span> similar labels as <span data-cy="review-class">{q.label}</span>?
      </div>
      {status ? <div data-cy="review-status" style={{ fontWeight: 600 }}>{status}</div> : null}
      <div style={muted}>
        {q.num_accepted} labels of this tight cluster (same class, close in embedding space) were accepted one by
        one and none rejected. Accepting is one logged, undoable bulk decision: it is not counted as {n} labels a
        person checked. No (R) goes through them one by one.
      </div>
      <div style={{ display: "flex", flexWrap: "wrap", gap: 4 }}>
        {q.members.slice(0, GROUP_SHOWN).map((m) => (
          <CropCanvas key={m.label_id} id={m.label_id} entry={images.load(mediaUrl(m.filepath))} box={m.bounding_box}
            size={84} />
        ))}
        {n > GROUP_SHOWN ? <div style={{ ...muted, alignSelf: "center" }}>and {n - GROUP_SHOWN} more</div> : null}
      </div>
    </div>
  );
}
