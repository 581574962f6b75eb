// The surface's conversation with its Python panel: loading questions,
// asking for more, sending answers, corrections and undos in order, and
// keeping the session (./session.js) up to date with what comes back.

import { React, SerialQueue, mediaUrl } from "./app.js";
import { ImageCache } from "./images.js";
import { OPEN, ReviewSession } from "./session.js";

/** questions per request */
export const BATCH = 20;
/** images decoded ahead of the reviewer */
const PREFETCH = 6;

/** The label whose picture a question shows (a group: its first label). */
export function face(item) {
  return item.q.kind === "group" ? item.q.members[0] : item.q;
}

/**
 * `call`: the panel's methods (app.js usePanelMethods); `ready`: they have
 * arrived; `viewKey` / `fieldChoice`: a change starts over; `name`: the
 * reviewer's name (sent with every request). Returns the session, the
 * panel's answer to `load` (`meta`), a message for the reviewer, and
 * `send(action, change)` / `undo()`.
 */
export function useReview({ call, ready, viewKey, fieldChoice, name }) {
  const session = React.useRef(null);
  if (!session.current) session.current = new ReviewSession();
  const s = session.current;
  const [, bump] = React.useReducer((x) => x + 1, 0);
  const queue = React.useMemo(() => new SerialQueue(() => bump()), []);
  const images = React.useMemo(() => new ImageCache(24), []);
  const [meta, setMeta] = React.useState(null);
  const [message, setMessage] = React.useState(null);
  const fetching = React.useRef(false);
  // answers of questions of an earlier view are not added to the new one
  const generation = React.useRef(0);

  const field = meta && meta.label_field;
  const params = (extra) => ({ label_field: field, user: name || undefined, ...extra });

  // -- loading ------------------------------------------------------------------
  const load = React.useCallback(() => {
    if (!ready) return;
    s.reset();
    const gen = ++generation.current;
    fetching.current = true;
    call("load", { label_field: fieldChoice, limit: BATCH, exclude: [], user: name || undefined })
      .then((out) => {
        if (gen !== generation.current) return;
        setMeta(out);
        if (out.error) return;
        s.add(out.questions, BATCH);
        s.countsArrived(out.stats);
      })
      .catch((e) => setMessage(`Could not load the questions: ${e.message}`))
      .finally(() => {
        if (gen === generation.current) fetching.current = false;
        bump();
      });
  }, [ready, fieldChoice, viewKey]); // eslint-disable-line react-hooks/exhaustive-deps

  React.useEffect(load, [load]);

  const fetchMore = () => {
    if (fetching.current || !field || !s.needsMore()) return;
    // beside the writes, not behind them: the next questions never wait
    // for answers to be stored (those on their way are in `exclude`)
    fetching.current = true;
    s.fetching();
    const gen = generation.current;
    call("questions", params({ limit: BATCH, exclude: s.exclude() }))
      .then((out) => {
        if (gen !== generation.current) return;
        s.refresh(out.questions, BATCH);
        s.countsArrived(out.stats);
      })
      .catch((e) => setMessage(`Could not load more questions: ${e.message}`))
      .finally(() => {
        // (a load for a new view owns the flag meanwhile)
        if (gen === generation.current) fetching.current = false;
        bump();
      });
  };

  // after every change: more questions when few lie ahead, and their images
  React.useEffect(() => {
    fetchMore();
    const srcs = [];
    for (let i = s.cursor; i < s.items.length && srcs.length < PREFETCH; i++) {
      if (s.items[i].state === OPEN || i === s.cursor) srcs.push(mediaUrl(face(s.items[i]).filepath));
    }
    images.prefetch(srcs);
  });

  // -- answers --------------------------------------------------------------------
  const send = (action, change) => {
    const r = s.answer(change ? "correct" : action);
    if (!r) return;
    const { item, entry, expected } = r;
    if (change) {
      entry.prevChange = item.change || null;
      item.change = { ...(item.change || {}), ...change };
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
        // the review core offers the accepted label's cluster as one question
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
    queue
      .run(async () => {
        const out = await entry.result;
        if (!out || out.conflict || out.action_id == null) return null; // nothing was written
        const undone = await call("undo", params({}));
        return { undone, expected: out.action_id };
      })
      .then((r) => {
        if (r && r.undone.undone_action_id !== r.expected) {
          setMessage(
            `Undid your action ${r.undone.undone_action_id} (${r.undone.undone_action}), which was not this surface's last answer.`
          );
        } else if (r && r.undone.num_conflicts) {
          setMessage("Not undone: someone decided this label again since.");
        } else setMessage(null);
        bump();
      })
      .catch((e) => {
        setMessage(`Undo failed: ${e.message}`);
        bump();
      })
      .finally(() => {
        s.done(bucket);
        bump();
      });
  };

  return { s, meta, message, setMessage, send, undo, queue, images, bump, loading: meta === null || fetching.current };
}
