import { test } from "node:test";
import assert from "node:assert/strict";
import { boxToCanvas, canvasToImage, cropRegion, fit, handleAt, moveHandle, nextHandle, boxChanged, MIN_SIDE } from "../src/geometry.js";

const near = (a, b, eps = 1e-9) => assert.ok(Math.abs(a - b) < eps, `${a} != ${b}`);

test("the crop is the box plus context, square, inside the image", () => {
  // a 32 px box in a 256 px image: 32 * 3 = 96 px, but at least 0.2 * 256
  const r = cropRegion([0.5, 0.5, 0.125, 0.125], 256, 256);
  near(r.sw, 96);
  near(r.sx + r.sw / 2, 0.5625 * 256);
  // at the corner: shifted inside, not shrunk
  const c = cropRegion([0, 0, 0.125, 0.125], 256, 256);
  assert.deepEqual([c.sx, c.sy, c.sw, c.sh], [0, 0, 96, 96]);
  // a big box: cut to the image
  const b = cropRegion([0.1, 0.1, 0.8, 0.5], 640, 480);
  assert.deepEqual([b.sx, b.sy, b.sw, b.sh], [0, 0, 640, 480]);
  // a tiny box: at least MIN_REGION of the longer side
  near(cropRegion([0.5, 0.5, 0.001, 0.001], 1000, 500).sw, 200);
});

test("canvas and image coordinates are inverse; the box lands where it is", () => {
  const W = 640, H = 480;
  const box = [0.25, 0.5, 0.1, 0.2];
  const region = cropRegion(box, W, H);
  const f = fit(region.sw, region.sh, 400, 400);
  const r = boxToCanvas(box, W, H, region, f);
  const [u, v] = canvasToImage(r.x, r.y, W, H, region, f);
  near(u, 0.25);
  near(v, 0.5);
  const [u2, v2] = canvasToImage(r.x + r.w, r.y + r.h, W, H, region, f);
  near(u2, 0.35);
  near(v2, 0.7);
});

test("moving a handle edits one edge or the whole box, inside the image", () => {
  const box = [0.2, 0.2, 0.2, 0.2];
  const moved = moveHandle(box, "move", 0.1, -0.05);
  [0.3, 0.15, 0.2, 0.2].forEach((v, i) => near(moved[i], v));
  const left = moveHandle(box, "left", -0.1, 0);
  [0.1, 0.2, 0.3, 0.2].forEach((v, i) => near(left[i], v));
  const bottom = moveHandle(box, "bottom", 0, 0.1);
  [0.2, 0.2, 0.2, 0.3].forEach((v, i) => near(bottom[i], v));
  assert.deepEqual(moveHandle(box, "move", 5, 5), [0.8, 0.8, 0.2, 0.2]);
  const squashed = moveHandle(box, "right", -1, 0);
  near(squashed[2], MIN_SIDE);
  assert.throws(() => moveHandle(box, "corner", 0, 0));
});

test("handles cycle in Tab order and a pointer grabs the nearest edge", () => {
  assert.equal(nextHandle("move"), "left");
  assert.equal(nextHandle("bottom"), "move");
  assert.equal(nextHandle("move", -1), "bottom");
  const rect = { x: 100, y: 100, w: 50, h: 40 };
  assert.equal(handleAt(rect, 101, 120), "left");
  assert.equal(handleAt(rect, 149, 120), "right");
  assert.equal(handleAt(rect, 125, 99), "top");
  assert.equal(handleAt(rect, 125, 141), "bottom");
  assert.equal(handleAt(rect, 125, 120), "move");
  assert.equal(handleAt(rect, 10, 10), null);
  assert.equal(boxChanged([0, 0, 1, 1], [0, 0, 1, 1 + 1e-9]), false);
  assert.equal(boxChanged([0, 0, 1, 1], [0, 0, 1, 0.9]), true);
});
