// The question's picture: the crop around the label, large, with its box,
// and a thumbnail of the whole image. Drawn on canvases from a decoded
// image, in a layout effect, so a new question is on screen in the frame
// after the key press that asked for it.

import { React } from "./app.js";
import { boxToCanvas, canvasToImage, cropRegion, fit, handleAt, moveHandle } from "./geometry.js";

const BOX = "#ffd600";
const EDIT = "#00e5ff";

/** Width and height of an element (null: none yet), kept up to date. */
export function useSize(el) {
  const [size, setSize] = React.useState({ width: 0, height: 0 });
  React.useLayoutEffect(() => {
    if (!el) return undefined;
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

/**
 * The crop. `entry`: the image cache entry; `box`: the label's box;
 * `editBox`/`handle`: the box being fixed and the part the keys move;
 * `onEdit(box)`: a drag changed the box.
 */
export function CropCanvas({ id, entry, box, editBox, handle, size, onEdit }) {
  const ref = React.useRef(null);
  const [, redraw] = React.useReducer((x) => x + 1, 0);
  const geo = React.useRef(null);
  const drag = React.useRef(null);

  React.useLayoutEffect(() => {
    const canvas = ref.current;
    if (!canvas || !size) return;
    const g = prepare(canvas, size, size);
    geo.current = null;
    // which question's picture is on the canvas ("" while its image loads):
    // what tests and the benchmark wait for
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
    // small crops are scaled up a lot: keep their pixels sharp
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
        bottom: [e.x, e.y + e.h, e.x + e.w, e.y + e.h],
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

  return (
    <canvas
      ref={ref}
      data-cy="review-crop"
      style={{ width: size, height: size, display: "block", cursor: editBox ? "crosshair" : "default", touchAction: "none" }}
      onPointerDown={onPointerDown}
      onPointerMove={onPointerMove}
      onPointerUp={onPointerUp}
    />
  );
}

/** The whole image, small, with the box: where in the image the crop is. */
export function Thumbnail({ entry, box, size }) {
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
  return <canvas ref={ref} data-cy="review-thumbnail" style={{ width: size, height: size, display: "block" }} />;
}
