// What the surface takes from the FiftyOne App: React and the App's own
// packages, which the App puts on `window` for plugin bundles
// (@fiftyone/plugins as __fop__, operators as __foo__, spaces as __fosp__,
// state as __fos__, MUI as __mui__). Nothing of theirs is bundled.

export const React = window.React;

/**
 * `call(method, params)`: runs a method of the Python panel (its URI comes
 * with the panel's view: `schema.view[method]`) and resolves with what it
 * returned; rejects with the server's error message.
 */
export function usePanelMethods(schema) {
  const panelId = window.__fosp__.usePanelId();
  const handleEvent = window.__foo__.usePanelEvent();
  const latest = React.useRef(null);
  latest.current = { panelId, handleEvent, view: (schema && schema.view) || {} };
  return React.useCallback(
    (method, params) =>
      new Promise((resolve, reject) => {
        const { panelId: id, handleEvent: handle, view } = latest.current;
        if (!view[method]) {
          reject(new Error(`The panel has no method ${method}`));
          return;
        }
        handle(id, {
          operator: view[method],
          params,
          callback: (result) => {
            // the panel's methods hand their errors back as {error} (./review_queue)
            if (!result) reject(new Error(`No answer from ${method}`));
            else if (result.error) reject(new Error(result.errorMessage || String(result.error)));
            else if (result.result && result.result.error) reject(new Error(result.result.error));
            else resolve(result.result);
          },
        });
      }),
    []
  );
}

/** The URL the App serves a media file from. */
export function mediaUrl(filepath) {
  return window.__fos__.getSampleSrc(filepath);
}

/** Runs promise-returning jobs one after the other, in the order given. */
export class SerialQueue {
  constructor(onChange = () => {}) {
    this.tail = Promise.resolve();
    this.pending = 0;
    this.onChange = onChange;
  }

  run(job) {
    this.pending++;
    this.onChange();
    const p = this.tail.then(job);
    this.tail = p
      .catch(() => {})
      .then(() => {
        this.pending--;
        this.onChange();
      });
    return p;
  }
}
