// Where a question's crop comes from and where its box is drawn, and how
// the box is edited. Boxes are FiftyOne's: [x, y, w, h] of the top-left
// corner, width and height, relative to the image (0..1). Regions are in
// image pixels. Pure functions.

/** context around the box, in box sizes on each side */
export const CONTEXT = 1.0;
/** the crop shows at least this share of the image's longer side */
export const MIN_REGION = 0.2;
/** smallest box side, relative */
export const MIN_SIDE = 0.002;
/** the parts of a box the keys move, in Tab order */
export const HANDLES = ["move", "left", "top", "right", "bottom"];

/**
 * The image region shown for a box: a square around the box's centre,
 * the box plus `context` box sizes on each side, at least `minRegion` of
 * the image's longer side, shifted (not shrunk) to stay inside the image
 * and cut to the image where it is larger.
 */
export function cropRegion(box, imgW, imgH, context = CONTEXT, minRegion = MIN_REGION) {
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

/** Where a region of size sw x sh lands in a W x H canvas (aspect kept, centred). */
export function fit(sw, sh, W, H) {
  const scale = Math.min(W / sw, H / sh);
  const dw = sw * scale;
  const dh = sh * scale;
  return { dx: (W - dw) / 2, dy: (H - dh) / 2, dw, dh, scale };
}

/** A relative box as a canvas rectangle {x, y, w, h}, given region and fit. */
export function boxToCanvas(box, imgW, imgH, region, f) {
  const [x, y, w, h] = box;
  return {
    x: f.dx + (x * imgW - region.sx) * f.scale,
    y: f.dy + (y * imgH - region.sy) * f.scale,
    w: w * imgW * f.scale,
    h: h * imgH * f.scale,
  };
}

/** A canvas point as a relative image point [u, v]. */
export function canvasToImage(px, py, imgW, imgH, region, f) {
  return [(region.sx + (px - f.dx) / f.scale) / imgW, (region.sy + (py - f.dy) / f.scale) / imgH];
}

/**
 * The box with one handle moved by (du, dv) relative units: "move" shifts
 * the whole box, an edge moves that edge. The result stays inside the
 * image and keeps at least MIN_SIDE per side.
 */
export function moveHandle(box, handle, du, dv) {
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

/** The next (or previous, `step` -1) handle in Tab order. */
export function nextHandle(handle, step = 1) {
  const i = HANDLES.indexOf(handle);
  return HANDLES[(i + step + HANDLES.length) % HANDLES.length];
}

/**
 * Which handle a pointer at canvas (px, py) grabs on a canvas rectangle:
 * an edge within `tol` pixels, else "move" inside the box, else null.
 */
export function handleAt(rect, px, py, tol = 6) {
  const inY = py >= rect.y - tol && py <= rect.y + rect.h + tol;
  const inX = px >= rect.x - tol && px <= rect.x + rect.w + tol;
  if (inY && Math.abs(px - rect.x) <= tol) return "left";
  if (inY && Math.abs(px - (rect.x + rect.w)) <= tol) return "right";
  if (inX && Math.abs(py - rect.y) <= tol) return "top";
  if (inX && Math.abs(py - (rect.y + rect.h)) <= tol) return "bottom";
  if (px > rect.x && px < rect.x + rect.w && py > rect.y && py < rect.y + rect.h) return "move";
  return null;
}

/** Whether two boxes differ by more than float noise. */
export function boxChanged(a, b, eps = 1e-6) {
  return a.length !== b.length || a.some((v, i) => Math.abs(v - b[i]) > eps);
}

function clamp(v, lo, hi) {
  return Math.min(Math.max(v, lo), Math.max(lo, hi));
}
