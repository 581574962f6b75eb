// The review surface: one question at a time, answered from the keyboard.
//
// A key press changes the session (./session.js) and the next question is
// drawn at once from the questions and decoded images held here; the
// answer goes to the Python panel (the review core) in the background, in
// order (./review.js). This module: the keys, the modes (question, class
// picker, box editing) and the layout.

import { React, mediaUrl, usePanelMethods } from "./app.js";
import { CropCanvas, Thumbnail, useSize } from "./canvas.js";
import { boxChanged, moveHandle, nextHandle } from "./geometry.js";
import { arrowDirection, commandFor } from "./keys.js";
import { face, useReview } from "./review.js";
import { Actions, ClassPicker, Counts, GroupQuestion, Legend, NamePrompt, QuestionText } from "./views.js";

const NAME_KEY = "stoplight.reviewer";

function storedName() {
  try {
    return window.sessionStorage.getItem(NAME_KEY) || "";
  } catch (e) {
    return "";
  }
}

export function ReviewQueue(props) {
  const call = usePanelMethods(props.schema);
  const viewKey = (props.data && props.data.view_key) || null;
  // the panel's methods arrive with its first render on the server
  const ready = !!(props.schema && props.schema.view && props.schema.view.load);
  const [name, setName] = React.useState(storedName);
  const [asking, setAsking] = React.useState(false); // the name prompt
  const [mode, setMode] = React.useState("question");
  const [editBox, setEditBox] = React.useState(null);
  const [handle, setHandle] = React.useState("move");
  // the label field the reviewer chose (null: the server's default)
  const [fieldChoice, setFieldChoice] = React.useState(null);
  const [focused, setFocused] = React.useState(false);
  const { s, meta, message, setMessage, send, undo, queue, images, bump, loading } = useReview({
    call, ready, viewKey, fieldChoice, name,
  });
  const root = React.useRef(null);
  const [rootEl, setRootEl] = React.useState(null);
  const rootRef = React.useCallback((el) => {
    root.current = el;
    setRootEl(el);
  }, []);
  const area = useSize(rootEl);
  const reviewer = (meta && meta.reviewer) || name;
  const field = meta && meta.label_field;

  // the keys go to the surface: focused when it shows and after each mode
  const showing = !!reviewer && !asking;
  React.useEffect(() => {
    // (the class picker's text box takes it itself)
    if (showing && mode !== "class" && root.current) root.current.focus({ preventScroll: true });
  }, [showing, mode, rootEl]);

  const command = (cmd) => {
    const item = s.current();
    const group = item && item.q.kind === "group";
    if (group && (cmd === "reject" || cmd === "unsure")) s.decline();
    else if (group && (cmd === "change_class" || cmd === "fix_box")) setMessage("A group is accepted or gone through one by one.");
    else if (cmd === "accept" || cmd === "reject") send(cmd);
    else if (cmd === "unsure") s.unsure();
    else if (cmd === "next") s.next();
    else if (cmd === "prev") s.prev();
    else if (cmd === "undo") undo();
    else if ((cmd === "change_class" || cmd === "fix_box") && item) {
      if (!meta || !meta.can_correct) {
        setMessage("Corrections need the review core's correct_label, which this version does not have.");
      } else if (cmd === "change_class") setMode("class");
      else {
        setEditBox(shownBox(item));
        setHandle("move");
        setMode("box");
      }
    }
    bump();
  };

  const saveBox = () => {
    const item = s.current();
    setMode("question");
    if (item && editBox && boxChanged(editBox, shownBox(item))) {
      send("correct", { bounding_box: editBox.map((v) => +v.toFixed(6)) });
    }
    setEditBox(null);
  };

  const onKeyDown = (e) => {
    // keys typed into a field (the class picker, the field menu) are the field's
    if (asking || mode === "class" || ["INPUT", "SELECT", "TEXTAREA"].includes(e.target.tagName)) return;
    const cmd = commandFor(e, mode);
    if (!cmd) return;
    e.preventDefault();
    e.stopPropagation();
    if (mode === "box") {
      const item = s.current();
      if (cmd === "nudge" && item) {
        const entry = images.load(mediaUrl(face(item).filepath));
        const W = entry.ready ? entry.img.naturalWidth : 1000;
        const H = entry.ready ? entry.img.naturalHeight : 1000;
        const [du, dv] = arrowDirection(e.key);
        const step = e.shiftKey ? 10 : 1;
        setEditBox((b) => moveHandle(b, handle, (du * step) / W, (dv * step) / H));
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

  // -- layout -------------------------------------------------------------------------
  if (meta && meta.error) return <div style={{ padding: 16 }}>{meta.error}</div>;
  if (!reviewer || asking) {
    return (
      <NamePrompt
        initial={name}
        onSave={(n) => {
          try {
            window.sessionStorage.setItem(NAME_KEY, n);
          } catch (e) {
            /* private mode: the name lasts as long as the panel */
          }
          setName(n);
          setAsking(false);
        }}
      />
    );
  }
  const item = s.current();
  const entry = item ? images.load(mediaUrl(face(item).filepath)) : null;
  // wide panel: picture left, question right; narrow: picture on top
  const wide = area.width >= 760;
  const side = Math.round(
    wide
      ? Math.max(200, Math.min(area.width - 420, area.height - 170, 720))
      : Math.max(200, Math.min(area.width - 24, area.height * 0.45, 720))
  );
  const label = item ? shownLabel(item) : null;
  return (
    <div
      ref={rootRef}
      tabIndex={0}
      onKeyDown={onKeyDown}
      onFocus={() => setFocused(true)}
      onBlur={(e) => {
        if (!e.currentTarget.contains(e.relatedTarget)) setFocused(false);
      }}
      onMouseDown={(e) => {
        // a click anywhere but in a text box gives the keys back to the surface
        if (!["INPUT", "TEXTAREA"].includes(e.target.tagName)) root.current.focus({ preventScroll: true });
      }}
      data-cy="review-queue"
      data-question-id={item ? item.q.label_id : ""}
      data-question-state={item ? item.state : ""}
      data-mode={mode}
      style={{ height: "100%", minHeight: 480, display: "flex", flexDirection: "column", gap: 8, padding: 12, outline: "none", boxSizing: "border-box" }}
    >
      {meta && meta.fields && meta.fields.length > 1 ? (
        <label style={{ fontSize: 13 }}>
          Label field:{" "}
          <select
            data-cy="review-field"
            value={field || ""}
            onChange={(e) => {
              setFieldChoice(e.target.value);
              root.current.focus({ preventScroll: true });
            }}
          >
            {meta.fields.map((f) => (
              <option key={f} value={f}>
                {f}
              </option>
            ))}
          </select>
        </label>
      ) : null}
      <Counts session={s} pending={queue.pending} reviewer={reviewer} onRename={() => setAsking(true)}
        missing={!!(meta && meta.adds_to)} />
      {!focused ? (
        <div data-cy="review-focus-hint" style={{ fontSize: 13, color: "#ff6d04" }}>
          Click here to answer with the keys.
        </div>
      ) : null}
      <div style={{ flex: 1, minHeight: 0, display: "flex", flexDirection: wide ? "row" : "column", gap: 16, overflowY: wide ? "visible" : "auto" }}>
        {item ? (
          <>
            <div style={{ display: "flex", flexDirection: "column", gap: 8 }}>
              <CropCanvas id={item.q.label_id} entry={entry} box={shownBox(item)} editBox={mode === "box" ? editBox : null}
                handle={handle} size={side} onEdit={setEditBox} />
            </div>
            <div style={{ flex: 1, minWidth: 300, display: "flex", flexDirection: "column", gap: 12, overflowY: wide ? "auto" : "visible" }}>
              {item.q.kind === "group" ? (
                <GroupQuestion item={item} images={images} />
              ) : mode === "class" ? (
                <ClassPicker
                  classes={(meta && meta.classes) || []}
                  current={label}
                  onPick={(c) => {
                    setMode("question");
                    if (c !== label) send("correct", { label: c });
                  }}
                  onCancel={() => setMode("question")}
                />
              ) : (
                <QuestionText item={item} label={label} changed={item.change && item.change.label !== item.q.label} />
              )}
              {mode === "box" ? (
                <div data-cy="review-box-help">Fixing the box: arrows move the highlighted part, Tab picks another, Enter saves, Esc cancels; or drag it.</div>
              ) : null}
              <Actions on={command} canCorrect={!!(meta && meta.can_correct)} hasQuestion={!!item} />
              <Thumbnail entry={entry} box={shownBox(item)} size={140} />
              {item.error && item.state !== "taken" ? <div data-cy="review-item-error">⚠ {item.error}</div> : null}
            </div>
          </>
        ) : (
          <div data-cy="review-empty" style={{ margin: "auto", textAlign: "center" }}>
            {loading ? "Loading questions…" : meta && meta.adds_to ? "No open candidates of missed objects left in this view."
              : "No open yellow labels left in this view."}
            <div style={{ marginTop: 12 }}>
              <Actions on={command} canCorrect={false} hasQuestion={false} />
            </div>
          </div>
        )}
      </div>
      {message ? <div data-cy="review-message">⚠ {message}</div> : null}
      <Legend mode={mode === "class" ? "class" : mode} />
    </div>
  );
}

/** The label's class as the reviewer left it (a correction shows the new one). */
function shownLabel(item) {
  return item.change && item.change.label ? item.change.label : item.q.label;
}

function shownBox(item) {
  return item.change && item.change.bounding_box ? item.change.bounding_box : face(item).bounding_box;
}
